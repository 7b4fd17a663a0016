import assert from "node:assert/strict";
import { parseSpiffeServiceId, uriSans } from "../../src/platform/mesh/spiffe.js";

describe("SPIFFE service IDs (Consul's leaf URI SANs)", () => {
  it("reads Consul's service ID form, with or without an admin partition", () => {
    assert.deepEqual(parseSpiffeServiceId("spiffe://7988AA16.consul/ns/default/dc/dc1/svc/orders"), {
      trustDomain: "7988aa16.consul",
      namespace: "default",
      datacenter: "dc1",
      service: "orders",
      uri: "spiffe://7988AA16.consul/ns/default/dc/dc1/svc/orders",
    });
    assert.equal(parseSpiffeServiceId("spiffe://td.consul/ap/team/ns/default/dc/dc1/svc/web")?.partition, "team");
  });

  it("refuses what is not a service ID: an agent's ID, another URI, a service ID with extra segments", () => {
    for (const uri of ["spiffe://td.consul/agent/client/dc/dc1/id/abc", "https://example.com/svc/web", "spiffe://td.consul/ns/default/dc/dc1/svc/web/extra", "spiffe://td.consul/ns/default/svc/web", ""]) {
      assert.equal(parseSpiffeServiceId(uri), undefined, uri);
    }
  });

  it("lists the URI SANs of Node's subjectaltname string, quoted ones too, in order, ignoring other kinds", () => {
    assert.deepEqual(uriSans('DNS:localhost, URI:spiffe://td/ns/default/dc/dc1/svc/a, IP Address:127.0.0.1, URI:"spiffe://td/x,y"'), ["spiffe://td/ns/default/dc/dc1/svc/a", "spiffe://td/x,y"]);
    assert.deepEqual(uriSans("DNS:localhost"), []);
    assert.deepEqual(uriSans(undefined), []);
  });
});
