import assert from "node:assert/strict";
import { dcloginUrl, newAccountUrl, quote } from "./dclogin.ts";
import { IP_SELF_SIGNED, TRUSTED } from "./testdata/services.ts";

Deno.test("quote() percent-encodes like Python's urllib.parse.quote", () => {
  // Expected values computed with CPython 3: quote(s, safe=...).
  assert.equal(quote("a b/c?d&e=f+g#h%"), "a%20b%2Fc%3Fd%26e%3Df%2Bg%23h%25");
  assert.equal(quote("AZaz09-._~"), "AZaz09-._~");
  assert.equal(quote("!*'();:@$,"), "%21%2A%27%28%29%3B%3A%40%24%2C");
  assert.equal(quote("ü€"), "%C3%BC%E2%82%AC");
  assert.equal(quote("user@[192.0.2.1]", "@[]"), "user@[192.0.2.1]");
  assert.equal(quote("us er@x", "@[]"), "us%20er@x");
});

Deno.test("dcloginUrl() encodes the password and prefers TLS ports", () => {
  const url = dcloginUrl(IP_SELF_SIGNED, "abc@[192.0.2.1]", "p&w=d?#%");
  assert.equal(
    url,
    "dclogin:abc@[192.0.2.1]?p=p%26w%3Dd%3F%23%25&v=1&ih=192.0.2.1&ip=2993&is=ssl&sh=192.0.2.1&sp=2465&ss=ssl&ic=3",
  );
  const starttls = dcloginUrl(
    { ...TRUSTED, selfSigned: true, ports: { ...TRUSTED.ports, imaps: 0, submissions: 0 } },
    "abc@example.org",
    "pw",
  );
  assert.equal(
    starttls,
    "dclogin:abc@example.org?p=pw&v=1&ih=mail.example.org&ip=143&is=starttls&sh=mail.example.org&sp=587&ss=starttls&ic=3",
  );
  const params = new URLSearchParams(url.slice(url.indexOf("?") + 1));
  assert.equal(params.get("p"), "p&w=d?#%");
});

Deno.test("newAccountUrl() adds the port only when it is not 443", () => {
  assert.equal(newAccountUrl(TRUSTED), "https://example.org/new");
  assert.equal(newAccountUrl(IP_SELF_SIGNED), "https://192.0.2.1:8443/new");
});
