import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMessage, type DescMethodUnary, type MessageShape } from "@bufbuild/protobuf";

/** protobuf-es serialization of one message type, in the form grpc-js takes it. */
export const codec = <T extends DescMessage>(schema: T) => ({
  serialize: (message: MessageShape<T>) => Buffer.from(toBinary(schema, message)),
  deserialize: (bytes: Buffer) => fromBinary(schema, bytes),
});

/** One unary method of a plain grpc-js server: its protobuf-es descriptor and its grpc-js handler. */
export interface UnaryMethod {
  method: DescMethodUnary;
  handle: grpc.handleUnaryCall<unknown, unknown>;
}

/** `handle` serving `method`, typed by the method's messages. */
export function unaryMethod<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, handle: grpc.handleUnaryCall<MessageShape<I>, MessageShape<O>>): UnaryMethod {
  return { method: method as unknown as DescMethodUnary, handle: handle as grpc.handleUnaryCall<unknown, unknown> };
}

/**
 * startGrpcJsServer starts a plain @grpc/grpc-js server in this process, knowing nothing of
 * meshkit, on 127.0.0.1 (a free port), serving `methods`: the peer that tests of meshkit's
 * grpc-js parts and of its interop measure against. Resolves with its port and `stop`.
 */
export async function startGrpcJsServer(methods: readonly UnaryMethod[]): Promise<{ port: number; stop: () => void }> {
  const server = new grpc.Server();
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const { method, handle } of methods) {
    const input = codec(method.input);
    const output = codec(method.output);
    definition[method.name] = {
      path: `/${method.parent.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: input.serialize as (message: unknown) => Buffer,
      requestDeserialize: input.deserialize,
      responseSerialize: output.serialize as (message: unknown) => Buffer,
      responseDeserialize: output.deserialize,
    };
    handlers[method.name] = handle;
  }
  server.addService(definition, handlers);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  return { port, stop: () => server.forceShutdown() };
}
