/** The PlanetScale list envelope: page numbers and URLs of the neighbouring pages. */
import type { FastifyRequest } from 'fastify';

export interface Page<T> {
  type: 'list';
  current_page: number;
  next_page: number | null;
  next_page_url: string | null;
  prev_page: number | null;
  prev_page_url: string | null;
  data: T[];
  total_count: number;
  total_pages: number;
}

/** "http://host:port" as the client reached us, for absolute URLs in responses. */
export function originOf(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

function pageUrl(request: FastifyRequest, page: number): string {
  const url = new URL(request.url, `${request.protocol}://${request.host}`);
  url.searchParams.set('page', String(page));
  return url.toString();
}

export function envelope<T>(request: FastifyRequest, data: T[], page: number, perPage: number, total: number): Page<T> {
  const totalPages = Math.max(1, Math.ceil(total / perPage));
  const next = page < totalPages ? page + 1 : null;
  const prev = page > 1 ? Math.min(page - 1, totalPages) : null;
  return {
    type: 'list',
    current_page: page,
    next_page: next,
    next_page_url: next === null ? null : pageUrl(request, next),
    prev_page: prev,
    prev_page_url: prev === null ? null : pageUrl(request, prev),
    data,
    total_count: total,
    total_pages: totalPages,
  };
}
