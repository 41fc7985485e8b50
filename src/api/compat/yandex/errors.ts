/**
 * The gRPC codes a 409 can mean. The HTTP status stays 409 (so that a plain HTTP client
 * sees a conflict); the body's `code` says which: 6 ALREADY_EXISTS (a name is taken) or
 * 9 FAILED_PRECONDITION (the resource is not in a state that allows the call: protected,
 * still being created, being restored). errors.ts turns them into the response.
 */
import { ApiError } from '../../errors.js';

export const GRPC = { CANCELLED: 1, INVALID_ARGUMENT: 3, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, FAILED_PRECONDITION: 9, ABORTED: 10, INTERNAL: 13, UNAUTHENTICATED: 16 } as const;

export const failedPrecondition = (m: string) => new ApiError(409, 'conflict', m, GRPC.FAILED_PRECONDITION);
export const alreadyExists = (m: string) => new ApiError(409, 'conflict', m, GRPC.ALREADY_EXISTS);
