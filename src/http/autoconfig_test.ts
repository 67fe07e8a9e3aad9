import assert from "node:assert/strict";
import { createHttpApp } from "./app.ts";
import { autoconfigXml } from "./autoconfig.ts";
import { httpServices, IP_SELF_SIGNED, TRUSTED } from "./testdata/services.ts";

function servers(xml: string) {
  return [...xml.matchAll(/<(incoming|outgoing)Server type="(\w+)">([\s\S]*?)<\/\1Server>/g)].map(
    (m) => {
      const field = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(m[3])![1];
      return {
        type: m[2],
        hostname: field("hostname"),
        port: Number(field("port")),
        socketType: field("socketType"),
        authentication: field("authentication"),
        username: field("username"),
      };
    },
  );
}

Deno.test("autoconfig XML lists IMAP 993/143 and SMTP 465/587 on the mail host", async () => {
  using t = await httpServices();
  const app = createHttpApp(t.deps);
  for (const path of ["/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"]) {
    const res = await app.request(path);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/xml; charset=utf-8");
    const xml = await res.text();
    assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<clientConfig version="1.1">/);
    assert.match(xml, /<emailProvider id="example.org">/);
    assert.match(xml, /<displayName>example.org chatmail<\/displayName>/);
    assert.deepEqual(servers(xml).map((s) => [s.type, s.hostname, s.port, s.socketType]), [
      ["imap", "mail.example.org", 993, "SSL"],
      ["imap", "mail.example.org", 143, "STARTTLS"],
      ["smtp", "mail.example.org", 465, "SSL"],
      ["smtp", "mail.example.org", 587, "STARTTLS"],
    ]);
    for (const s of servers(xml)) {
      assert.equal(s.authentication, "password-cleartext");
      assert.equal(s.username, "%EMAILADDRESS%");
    }
  }
});

Deno.test("autoconfigXml() uses the configured ports, the bare IP and skips disabled listeners", () => {
  const xml = autoconfigXml({ ...IP_SELF_SIGNED, ports: { ...IP_SELF_SIGNED.ports, imap: 0 } });
  assert.match(xml, /<emailProvider id="\[192.0.2.1\]">/);
  assert.deepEqual(servers(xml).map((s) => [s.type, s.hostname, s.port, s.socketType]), [
    ["imap", "192.0.2.1", 2993, "SSL"],
    ["smtp", "192.0.2.1", 2465, "SSL"],
    ["smtp", "192.0.2.1", 2587, "STARTTLS"],
  ]);
});

Deno.test("/.well-known/mta-sts.txt publishes an enforce policy for DNS domains only", async () => {
  using t = await httpServices();
  const res = await createHttpApp(t.deps).request("/.well-known/mta-sts.txt");
  assert.equal(res.status, 200);
  assert.equal(
    await res.text(),
    "version: STSv1\nmode: enforce\nmx: mail.example.org\nmx: example.org\nmax_age: 2419200\n",
  );
  using same = await httpServices({ ...TRUSTED, hostname: "example.org" });
  const one = await createHttpApp(same.deps).request("/.well-known/mta-sts.txt");
  assert.equal(
    await one.text(),
    "version: STSv1\nmode: enforce\nmx: example.org\nmax_age: 2419200\n",
  );
  using ip = await httpServices(IP_SELF_SIGNED);
  const none = await createHttpApp(ip.deps).request("/.well-known/mta-sts.txt");
  assert.equal(none.status, 404);
  await none.body?.cancel();
});
