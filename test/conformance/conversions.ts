import { create } from "@bufbuild/protobuf";
import { anyPack, type Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorSchema, HeaderSchema, type Error as ConformanceError, type Header } from "../../gen/connectrpc/conformance/v1/service_pb.js";

/**
 * Conversions between the conformance protocol's messages (headers, errors) and what Connect's
 * API uses, shared by the server under test and the client under test.
 */

/** toProtoHeaders lists `headers` the way the conformance messages carry them. */
export function toProtoHeaders(headers: Headers): Header[] {
  const result: Header[] = [];
  // Node's Headers joins repeated values with ", "; the runner splits them again when it compares.
  headers.forEach((value, name) => result.push(create(HeaderSchema, { name, value: [value] })));
  return result;
}

/** appendProtoHeaders adds every value of `headers` to `target`. */
export function appendProtoHeaders(target: Headers, headers: readonly Header[]): void {
  for (const header of headers) for (const value of header.value) target.append(header.name, value);
}

/** toHeadersInit turns the conformance request headers into what a Connect call takes. */
export function toHeadersInit(headers: readonly Header[]): Headers {
  const result = new Headers();
  appendProtoHeaders(result, headers);
  return result;
}

/**
 * toConnectError builds the error a handler throws from the error a test asks for. Its details
 * are already packed `Any`s: they go on the wire as they are (type name and bytes), with no
 * registry needed to unpack them first.
 */
export function toConnectError(definition: ConformanceError, extraDetails: readonly Any[] = []): ConnectError {
  const error = new ConnectError(definition.message ?? "", definition.code as number as Code);
  error.details = [...definition.details, ...extraDetails].map((any) => ({ type: typeNameOf(any.typeUrl), value: any.value }));
  return error;
}

/** toProtoError records an error a call ended with, its details as received. */
export function toProtoError(caught: unknown): ConformanceError {
  const error = ConnectError.from(caught);
  return create(ErrorSchema, {
    code: error.code as number,
    message: error.rawMessage,
    details: error.details.map((detail) =>
      "desc" in detail
        ? // A detail made locally (an error that never went over the wire) is packed here.
          anyPack(detail.desc, create(detail.desc, detail.value))
        : { typeUrl: `type.googleapis.com/${detail.type}`, value: detail.value },
    ),
  });
}

function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
}

/** sleep waits `ms` milliseconds (resolves at once for 0). */
export function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
