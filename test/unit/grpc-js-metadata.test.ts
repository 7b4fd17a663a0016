import assert from "node:assert/strict";
import { Metadata } from "@grpc/grpc-js";
import { headersToMetadata, MetadataHeaders, metadataToHeaders } from "../../src/client/wire/metadata.js";

describe("grpc-js metadata <-> Connect headers", () => {
  it("sends text headers as they are and -bin headers as bytes, several values of one key split", () => {
    const headers = new Headers({ "x-text": "hello", "content-type": "application/grpc", "x-data-bin": `${Buffer.from([1, 2]).toString("base64")}, ${Buffer.from([255]).toString("base64")}` });
    const metadata = headersToMetadata(headers);
    assert.deepEqual(metadata.get("x-text"), ["hello"]);
    assert.deepEqual(metadata.get("x-data-bin"), [Buffer.from([1, 2]), Buffer.from([255])]);
    assert.deepEqual(metadata.get("content-type"), [], "the protocol's own headers are grpc-js's to write");
  });

  it("reads binary values back as unpadded base64 and keeps every value", () => {
    const metadata = new Metadata();
    metadata.add("x-text", "a");
    metadata.add("x-text", "b");
    metadata.add("x-data-bin", Buffer.from([0, 1, 2, 3]));
    const headers = metadataToHeaders(metadata);
    assert.equal(headers.get("x-text"), "a, b");
    assert.equal(headers.get("x-data-bin"), "AAECAw");
  });

  it("MetadataHeaders converts on first use, by any way of reading, and stays a Headers", () => {
    const metadata = new Metadata();
    metadata.add("x-one", "1");
    const viaGet = new MetadataHeaders(metadata);
    assert.ok(viaGet instanceof Headers);
    assert.equal(viaGet.get("x-one"), "1");
    assert.deepEqual([...new MetadataHeaders(metadata)], [["x-one", "1"]]);
    assert.equal(new Headers(new MetadataHeaders(metadata)).get("x-one"), "1");
    const written = new MetadataHeaders(metadata);
    written.set("x-two", "2");
    assert.deepEqual([...written.keys()], ["x-one", "x-two"]);
    const seen: string[] = [];
    new MetadataHeaders(metadata).forEach((value, key) => seen.push(`${key}=${value}`));
    assert.deepEqual(seen, ["x-one=1"]);
  });
});
