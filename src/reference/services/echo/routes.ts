import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { EchoService } from "../../../../gen/meshkit/echo/v1/echo_pb.js";
import type { EchoFaults } from "./faults.js";

/** The most copies one EchoStream call may ask for: bounds the work a single call can cause. */
export const maxStreamCount = 1000;

/** echoRoutes mounts the echo service, answering as instance `instanceId`. */
export function echoRoutes(instanceId: string, faults?: EchoFaults): (router: ConnectRouter) => void {
  return (router) =>
    router.service(EchoService, {
      async echo(request, context) {
        await faults?.apply(context.signal);
        return { message: request.message, instanceId };
      },
      async *echoStream(request, context) {
        if (request.count > maxStreamCount) {
          throw new ConnectError(`count must be at most ${maxStreamCount}, got ${request.count}`, Code.InvalidArgument);
        }
        await faults?.apply(context.signal);
        for (let sequence = 1; sequence <= request.count && !context.signal.aborted; sequence++) {
          yield { message: request.message, sequence, instanceId };
        }
      },
    });
}
