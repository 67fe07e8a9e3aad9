// Run as a child process by trust_test.ts: connects to an SMTP and an HTTPS peer with the trust
// the relay would use (no configured CAs unless given) and prints one line per transport.

import { SmtpSession } from "../smtp_client.ts";
import { HttpsPool } from "../https_client.ts";
import { AttemptBudget, DEFAULT_DEADLINES } from "../deadlines.ts";
import { trustedCas } from "../trust.ts";

const [smtpPort, httpsPort, configured] = Deno.args;
const ca = trustedCas(configured ? [await Deno.readTextFile(configured)] : []);
const budget = () => new AttemptBudget({ ...DEFAULT_DEADLINES, attemptMs: 10_000 });
try {
  const s = await SmtpSession.open({
    address: "127.0.0.1",
    port: Number(smtpPort),
    servername: "peer.test",
    insecure: false,
    ca,
    heloName: "probe.test",
  }, budget());
  await s.quit();
  console.log("smtp ok");
} catch (err) {
  console.log(`smtp failed: ${(err as Error).message}`);
}
const pool = new HttpsPool();
try {
  const r = await pool.post(
    { address: "127.0.0.1", port: Number(httpsPort), host: "peer.test", insecure: false, ca },
    "/mxdeliv",
    [],
    new Uint8Array(0),
    budget(),
  );
  console.log(`https ok ${r.status}`);
} catch (err) {
  console.log(`https failed: ${(err as Error).message}`);
} finally {
  pool.close();
}
