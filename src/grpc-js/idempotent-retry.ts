import * as grpc from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import { backoffDelay, type BackoffOptions } from "../client/retry/backoff.js";
import { createRetryBudget, type RetryBudget, type RetryBudgetOptions } from "../client/retry/budget.js";

/** IdempotentRetryOptions configure `idempotentRetryInterceptor`. */
export interface IdempotentRetryOptions {
  /** The services whose unary methods marked NO_SIDE_EFFECTS or IDEMPOTENT in the proto are retried. */
  services: readonly DescService[];
  /** Attempts per call made by this interceptor, the first included. Default 3. */
  maxAttempts?: number;
  /** Its retry budget (share one to pool it) or the budget's options. Default 20% of calls + 10/s over 10 s, as the mesh client. */
  budget?: RetryBudget | RetryBudgetOptions;
  /** Backoff before each retry. Default full jitter from 25 ms up to 1 s, as the mesh client. */
  backoff?: BackoffOptions;
}

const retryableCodes = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.RESOURCE_EXHAUSTED]);

/**
 * idempotentRetryInterceptor retries, on another attempt through the channel (so round_robin
 * picks another instance), the unary calls of idempotent methods that failed with UNAVAILABLE,
 * DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED after the server had already answered with headers.
 *
 * Why it exists: grpc-js's retryPolicy follows gRFC A6, which commits a call once response
 * headers arrive; from then on nothing retries it. When an instance dies between sending its
 * headers and its trailers (a SIGKILL under load does this now and then; the connection resets
 * with the response half sent), the call fails with UNAVAILABLE although a retry elsewhere would
 * succeed and is safe for an idempotent method. The mesh client retries those; this interceptor
 * gives grpc-js channels the same. It sits above the channel's own retries, buffers the one
 * response of a unary call until its status is known, never retries past the call's deadline,
 * and draws on a budget like the mesh client's so that an outage does not multiply the load.
 * Written here because grpc-js ships no such interceptor; the shape follows gRFC L5's retry example.
 */
export function idempotentRetryInterceptor(options: IdempotentRetryOptions): grpc.Interceptor {
  const paths = new Set(
    options.services.flatMap((service) =>
      service.methods
        .filter((method) => method.methodKind === "unary" && (method.idempotency === Idempotency.NO_SIDE_EFFECTS || method.idempotency === Idempotency.IDEMPOTENT))
        .map((method) => `/${service.typeName}/${method.name}`),
    ),
  );
  const maxAttempts = Math.max(1, options.maxAttempts ?? 3);
  const budget = options.budget && "tryWithdraw" in options.budget ? options.budget : createRetryBudget(options.budget);

  return (callOptions, nextCall) => {
    if (!paths.has(callOptions.method_definition.path)) return new grpc.InterceptingCall(nextCall(callOptions));
    budget.deposit();
    const deadlineMs = deadlineOf(callOptions.deadline);
    let metadata: grpc.Metadata;
    let request: unknown;
    let requestSent = false;
    let halfClosed = false;
    let cancelled = false;
    let retryCall: ReturnType<grpc.NextCall> | undefined;
    let attempts = 1;

    const requester: grpc.Requester = {
      start(requestMetadata, listener, next) {
        metadata = requestMetadata;
        // One listener per attempt: it holds back the attempt's headers and response until its
        // status says whether the caller sees this attempt or the next one.
        const attemptListener = (): grpc.InterceptingListener => {
          let headers: grpc.Metadata | undefined;
          let response: unknown;
          let responded = false;
          return {
            onReceiveMetadata: (received) => (headers = received),
            onReceiveMessage: (received) => {
              response = received;
              responded = true;
            },
            onReceiveStatus: (status) => {
              const delayMs = backoffDelay(attempts, options.backoff);
              const retry =
                !cancelled && retryableCodes.has(status.code) && attempts < maxAttempts && Date.now() + delayMs < deadlineMs && budget.tryWithdraw();
              if (!retry) {
                if (headers) listener.onReceiveMetadata(headers);
                if (responded) listener.onReceiveMessage(response);
                listener.onReceiveStatus(status);
                return;
              }
              attempts++;
              setTimeout(() => {
                const call = nextCall(callOptions);
                retryCall = call;
                call.start(metadata.clone(), attemptListener());
                if (requestSent) call.sendMessage(request);
                if (halfClosed) call.halfClose();
              }, delayMs);
            },
          };
        };
        next(metadata.clone(), attemptListener());
      },
      sendMessage(message, next) {
        request = message;
        requestSent = true;
        next(message);
      },
      halfClose(next) {
        halfClosed = true;
        next();
      },
      cancel(next) {
        cancelled = true;
        retryCall?.cancelWithStatus(grpc.status.CANCELLED, "Cancelled on client");
        next();
      },
    };
    return new grpc.InterceptingCall(nextCall(callOptions), requester);
  };
}

/** A call's deadline in epoch ms; Infinity when it has none. */
function deadlineOf(deadline: grpc.Deadline | undefined): number {
  if (deadline === undefined) return Infinity;
  return deadline instanceof Date ? deadline.getTime() : deadline;
}
