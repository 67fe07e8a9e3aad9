// Run by runtime_env_test.ts with tern's runtime environment: starts two Workers, lets them
// allocate, terminates them, waits for their threads to end, and prints how much of the process
// is in V8 heap pages (anonymous 256 KiB mappings) before and after, as JSON, in KiB.

const v8Pages = () => {
  let kib = 0;
  let size = 0;
  let anon = false;
  for (const line of Deno.readTextFileSync("/proc/self/smaps").split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      size = parseInt(m[2], 16) - parseInt(m[1], 16);
      anon = m[3] === "";
    } else if (anon && size === 256 * 1024 && line.startsWith("Rss:")) {
      kib += Number(line.split(/\s+/)[1]);
    }
  }
  return kib;
};
/** Threads running a Worker (Deno names them "worker-<n>"). */
const workerThreads = () =>
  [...Deno.readDirSync("/proc/self/task")].filter((t) => {
    try {
      return Deno.readTextFileSync(`/proc/self/task/${t.name}/comm`).startsWith("worker-");
    } catch {
      return false; // ended meanwhile
    }
  }).length;

const before = v8Pages();
const source = `self.onmessage = () => {
  const a = [];
  for (let i = 0; i < 50000; i++) a.push({ i, s: "x" + i });
  self.postMessage(a.length);
};`;
const url = `data:text/javascript;base64,${btoa(source)}`;
const workers = [0, 1].map(() => new Worker(url, { type: "module" }));
await Promise.all(
  workers.map((w) => new Promise((done) => (w.onmessage = done, w.postMessage(null)))),
);
const alive = v8Pages();
for (const w of workers) w.terminate();
// Their isolates are torn down on their own threads: wait until those have ended.
while (workerThreads() > 0) await new Promise((r) => setTimeout(r, 20));
console.log(JSON.stringify({ before, alive, after: v8Pages() }));
