import assert from "node:assert/strict";
import { ConfigError, readEnv } from "../../src/platform/config.js";
import { consulAddressFromEnv } from "../../src/platform/consul.js";

describe("consulAddressFromEnv: CONSUL_HTTP_ADDR and TLS as Consul's CLI reads them", () => {
  it("is plain HTTP for host:port and http://", () => {
    for (const address of ["127.0.0.1:8500", "http://127.0.0.1:8500"]) {
      const env = readEnv({ CONSUL_HTTP_ADDR: address });
      assert.deepEqual(consulAddressFromEnv(env), { host: "127.0.0.1", port: 8500 });
      env.done();
    }
  });

  it("is TLS for https:// or CONSUL_HTTP_SSL=true, with the CA, client certificate and server name", () => {
    const env = readEnv({ CONSUL_HTTP_ADDR: "https://consul.local:8501", CONSUL_CACERT: "ca.pem", CONSUL_CLIENT_CERT: "c.pem", CONSUL_CLIENT_KEY: "k.pem", CONSUL_TLS_SERVER_NAME: "server.dc1.consul" });
    assert.deepEqual(consulAddressFromEnv(env), { host: "consul.local", port: 8501, tls: { caFile: "ca.pem", certFile: "c.pem", keyFile: "k.pem", serverName: "server.dc1.consul" } });
    env.done();
    const ssl = readEnv({ CONSUL_HTTP_ADDR: "127.0.0.1:8501", CONSUL_HTTP_SSL: "true", CONSUL_HTTP_SSL_VERIFY: "false" });
    assert.deepEqual(consulAddressFromEnv(ssl), { host: "127.0.0.1", port: 8501, tls: { verify: false } });
    ssl.done();
  });

  it("refuses TLS files with a plain-HTTP address, and a client certificate without its key", () => {
    const plain = readEnv({ CONSUL_HTTP_ADDR: "127.0.0.1:8500", CONSUL_CACERT: "ca.pem" });
    consulAddressFromEnv(plain);
    assert.throws(() => plain.done(), (error: unknown) => error instanceof ConfigError && /not https:\/\//.test(error.message));
    const half = readEnv({ CONSUL_HTTP_ADDR: "https://127.0.0.1:8501", CONSUL_CLIENT_CERT: "c.pem" });
    consulAddressFromEnv(half);
    assert.throws(() => half.done(), (error: unknown) => error instanceof ConfigError && /go together/.test(error.message));
  });
});
