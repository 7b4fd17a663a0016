import { create, createRegistry, toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The request oneof, identical in shape in v1 and v1alpha. */
type ReflectionQuery = v1.ServerReflectionRequest["messageRequest"] | v1alpha.ServerReflectionRequest["messageRequest"];

/** The response oneof as plain data, to be wrapped in either version's message. */
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * reflectionRoutes mounts gRPC server reflection, `grpc.reflection.v1` and the older
 * `grpc.reflection.v1alpha` that many tools still ask for first, describing `services`
 * (pass every service the server mounts, reflection included) and every file they depend on.
 * With it, `grpcurl list`, `describe` and `call` work with no .proto files at hand.
 *
 * connect-node ships no reflection service (connect-es #797) and @grpc/reflection only plugs
 * into grpc-js servers; this one answers from the protobuf-es descriptors we already embed.
 */
export function reflectionRoutes(services: readonly DescService[]): (router: ConnectRouter) => void {
  const answer = createReflectionAnswerer(services);
  return (router) => {
    router.service(v1.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          yield create(v1.ServerReflectionResponseSchema, {
            validHost: request.host,
            originalRequest: request,
            messageResponse: answer(request.messageRequest),
          });
        }
      },
    });
    router.service(v1alpha.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          yield create(v1alpha.ServerReflectionResponseSchema, {
            validHost: request.host,
            originalRequest: request,
            messageResponse: answer(request.messageRequest),
          });
        }
      },
    });
  };
}

/** Builds the lookup tables once; each answer is then a map lookup and an encode. */
function createReflectionAnswerer(services: readonly DescService[]): (query: ReflectionQuery) => ReflectionAnswer {
  const filesByName = new Map<string, DescFile>();
  const collect = (file: DescFile): void => {
    const protoName = file.proto.name;
    if (filesByName.has(protoName)) return;
    filesByName.set(protoName, file);
    file.dependencies.forEach(collect);
  };
  services.forEach((service) => collect(service.file));
  const registry = createRegistry(...filesByName.values());
  const serviceNames = [...new Set(services.map((service) => service.typeName))].sort();
  const encoded = new Map<DescFile, Uint8Array>();
  const encode = (file: DescFile): Uint8Array => {
    let bytes = encoded.get(file);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      encoded.set(file, bytes);
    }
    return bytes;
  };

  // The file itself comes first, then everything it imports, so that a client can build its
  // descriptor pool from one answer instead of asking for each import in turn.
  const fileAnswer = (file: DescFile): ReflectionAnswer => {
    const ordered = new Set<DescFile>();
    const visit = (next: DescFile): void => {
      if (ordered.has(next)) return;
      ordered.add(next);
      next.dependencies.forEach(visit);
    };
    visit(file);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: [...ordered].map(encode) } };
  };
  const notFound = (message: string): ReflectionAnswer => ({
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: message },
  });

  const fileOfSymbol = (symbol: string): DescFile | undefined => {
    const direct = registry.get(symbol);
    if (direct) return direct.file;
    // A method ("pkg.Service.Method") or an enum value / field ("pkg.Type.member"): its parent
    // is in the registry.
    const parent = symbol.slice(0, Math.max(0, symbol.lastIndexOf(".")));
    return parent ? registry.get(parent)?.file : undefined;
  };

  return (query) => {
    switch (query.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } };
      case "fileByFilename": {
        const file = filesByName.get(query.value);
        return file ? fileAnswer(file) : notFound(`file "${query.value}" not found`);
      }
      case "fileContainingSymbol": {
        const file = fileOfSymbol(query.value);
        return file ? fileAnswer(file) : notFound(`symbol "${query.value}" not found`);
      }
      case "fileContainingExtension": {
        const extendee = registry.getMessage(query.value.containingType);
        const extension = extendee && registry.getExtensionFor(extendee, query.value.extensionNumber);
        return extension
          ? fileAnswer(extension.file)
          : notFound(`extension ${query.value.extensionNumber} of "${query.value.containingType}" not found`);
      }
      case "allExtensionNumbersOfType": {
        const extendee = registry.getMessage(query.value);
        if (!extendee) return notFound(`type "${query.value}" not found`);
        const numbers: number[] = [];
        for (const desc of registry) {
          if (desc.kind === "extension" && desc.extendee.typeName === extendee.typeName) numbers.push(desc.number);
        }
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: extendee.typeName, extensionNumber: numbers } };
      }
      default:
        return {
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "the request names no query" },
        };
    }
  };
}
