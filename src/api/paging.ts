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

/** A Host header we are willing to put in a URL: a name or IPv4/IPv6 address, maybe a port. */
const SAFE_HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * "http://host:port" as the client reached us, for absolute URLs in responses; "" (so
 * URLs stay relative) when the Host header is not a plain host, so that a forged one can
 * neither break a response nor be reflected into it.
 */
export function originOf(request: FastifyRequest): string {
  const host = request.host;
  return typeof host === 'string' && SAFE_HOST.test(host) ? `${request.protocol}://${host}` : '';
}

/** The request's path (also for absolute-form targets such as "GET http://host/path"). */
export function pathOf(request: FastifyRequest): string {
  return request.url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '').split('?')[0] || '/';
}

function pageUrl(request: FastifyRequest, page: number): string {
  const query = new URLSearchParams(request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '');
  query.set('page', String(page));
  return `${originOf(request)}${pathOf(request)}?${query.toString()}`;
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
