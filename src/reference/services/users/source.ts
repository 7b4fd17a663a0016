import { setTimeout as sleep } from "node:timers/promises";
import { backoffDelay } from "../../../client/retry/backoff.js";

/** A user as the third-party source sends it. */
export interface SourceUser {
  id: string;
  name?: string;
  email?: string;
  phone?: string;
  status?: string;
}

export interface UserSourceOptions {
  /** The source's URL; pages are read as `?offset=N&limit=M`, an answer shorter than `limit` ends. */
  url: string;
  pageSize: number;
  /** Pages fetched at once (the seed's semaphore). */
  concurrency: number;
  /** Per-request timeout, ms. */
  timeoutMs: number;
  /** Attempts per page, with jittered exponential backoff between them. */
  attempts: number;
}

/**
 * readUserSource fetches every page of the source with at most `concurrency` requests in
 * flight, each with a timeout and retries, and hands each page to `onPage` as it arrives. No
 * lock is held across a request (the seed's client serialised every call behind a mutex).
 *
 * The first page that fails for good (or `signal`) stops every worker: no new request, no new
 * `onPage`, requests in flight aborted. It rejects with that first error only once every worker
 * has stopped and every `onPage` already begun has finished, so nothing of a failed read goes on
 * writing after it returned (a `Promise.all` over the workers rejected at once and left the others
 * fetching and upserting; issue 13, case 4).
 */
export async function readUserSource(options: UserSourceOptions, onPage: (users: SourceUser[]) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const stop = new AbortController();
  const stopped = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  let nextOffset = 0;
  let finished = false;
  let firstError: unknown;
  const worker = async () => {
    while (!finished) {
      stopped.throwIfAborted();
      const offset = nextOffset;
      nextOffset += options.pageSize;
      const page = await fetchPage(options, offset, stopped);
      if (page.length < options.pageSize) finished = true;
      stopped.throwIfAborted();
      if (page.length > 0) await onPage(page);
    }
  };
  await Promise.all(
    Array.from({ length: options.concurrency }, () =>
      worker().catch((error: unknown) => {
        firstError ??= stopped.aborted ? stopped.reason : error;
        stop.abort(firstError);
      }),
    ),
  );
  if (firstError !== undefined) throw firstError;
}

async function fetchPage(options: UserSourceOptions, offset: number, signal?: AbortSignal): Promise<SourceUser[]> {
  const url = new URL(options.url);
  url.searchParams.set("offset", String(offset));
  url.searchParams.set("limit", String(options.pageSize));
  for (let attempt = 1; ; attempt++) {
    try {
      const timeout = AbortSignal.timeout(options.timeoutMs);
      const response = await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      if (!response.ok) throw new Error(`user source answered ${response.status} for ${url}`);
      const body = (await response.json()) as unknown;
      if (!Array.isArray(body)) throw new Error(`user source sent no JSON array for ${url}`);
      return body as SourceUser[];
    } catch (error) {
      if (attempt >= options.attempts || signal?.aborted) throw error;
      await sleep(Math.max(50, backoffDelay(attempt, { baseMs: 200, maxMs: 2000 })), undefined, signal ? { signal } : undefined);
    }
  }
}
