import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { DashboardService } from "../../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";

/**
 * The dashboard API on the page's own origin (the service that served the page), over the
 * Connect protocol: JSON-free binary messages over fetch, the snapshot stream included.
 */
export const dashboard = createClient(DashboardService, createConnectTransport({ baseUrl: window.location.origin, useBinaryFormat: true }));
