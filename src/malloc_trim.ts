// glibc's malloc_trim(0), called through Deno's FFI: hands the pages of free malloc memory back to
// the system.
//
// Deno's native side (TLS sessions, socket buffers, SQLite, ArrayBuffer contents) allocates with
// glibc's malloc, and glibc keeps what is freed: the main thread's [heap] gives pages back only
// from its top, above the highest chunk still in use, and a burst leaves its free chunks spread
// all over it. malloc_trim(0) releases every whole free page in every arena (madvise), wherever
// it lies; the memory stays reserved, so a later burst reuses it without asking for more.
//
// Where this cannot work it does nothing and says so once (`trimUnavailable`): another libc
// (musl has no libc.so.6 and no malloc_trim), another system, or a process without the FFI
// permission (`deno run` without --allow-ffi or -A; the systemd unit and `deno compile -A` have
// it). A failure to trim is never an error: the memory is only kept longer.

export type Trim = () => void;

const SYMBOLS = { malloc_trim: { parameters: ["usize"], result: "i32" } } as const;

let found: Trim | null | undefined;
/** Why libc's malloc_trim is not available here, once it was looked for and is not. */
export let trimUnavailable: string | null = null;

/**
 * libc's malloc_trim(0) when this process can call it, else null (looked up once). Each call
 * opens libc and closes it again: the process has it loaded anyway, so that costs a look-up, and
 * no library handle stays open (the test sanitizer counts one as a leaked resource).
 */
export function libcTrim(): Trim | null {
  if (found !== undefined) return found;
  found = null;
  if (Deno.build.os !== "linux") {
    trimUnavailable = `not Linux (${Deno.build.os})`;
    return null;
  }
  // Asked first, so that `deno run` in a terminal without --allow-ffi never stops to prompt.
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    trimUnavailable = "no FFI permission (--allow-ffi)";
    return null;
  }
  try {
    Deno.dlopen("libc.so.6", SYMBOLS).close();
  } catch (err) {
    trimUnavailable = `no glibc malloc_trim: ${(err as Error).message}`;
    return null;
  }
  found = () => {
    try {
      const lib = Deno.dlopen("libc.so.6", SYMBOLS);
      try {
        lib.symbols.malloc_trim(0n);
      } finally {
        lib.close();
      }
    } catch {
      // Only memory kept longer; the look-up above succeeded, so this does not happen.
    }
  };
  return found;
}
