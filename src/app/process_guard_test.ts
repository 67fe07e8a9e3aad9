import assert from "node:assert/strict";

const dec = new TextDecoder();

/** Connects, reads until the server closes, returns what was read. */
async function exchange(port: number): Promise<string> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  let got = "";
  const buf = new Uint8Array(256);
  try {
    while (true) {
      const n = await c.read(buf);
      if (n === null) break;
      got += dec.decode(buf.subarray(0, n));
    }
  } finally {
    c.close();
  }
  return got;
}

Deno.test("a connection handler that throws in every way cannot stop the process", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./testdata/throwing_listener.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const until = async (re: RegExp) => {
    while (!re.test(out)) {
      const { done, value } = await lines.read();
      if (done) throw new Error(`the process ended; output so far:\n${out}`);
      out += value;
    }
  };
  try {
    await until(/^port \d+$/m);
    const port = Number(/^port (\d+)$/m.exec(out)![1]);
    assert.equal(await exchange(port), "pong\r\n");
    await until(/emitted without a listener/);
    // The first connection's errors all escaped; the process still serves the next one.
    assert.equal(await exchange(port), "pong\r\n");
    await until(/(thrown in a timer[\s\S]*){2}/);
    for (
      const what of [
        "thrown in a timer",
        "rejected and never awaited",
        "emitted without a listener",
      ]
    ) {
      assert.match(out, new RegExp(`escaped: .*${what}`));
    }
    assert.match(out, /handler failed: thrown by the handler/);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await lines.cancel();
    await child.stderr.cancel();
  }
});
