// The app versions document served as IMAP METADATA /shared/vendor/deltachat/appversions, as the
// reference relay serves chatmaild's defaults/appversions.json: one line of compact JSON telling
// clients which app releases exist (chatmail-relay.md §4.3). Pure: schema check and default.

/** The document tern ships with (the reference's default at the time of writing). */
export const DEFAULT_APP_VERSIONS = {
  clients: [{
    clientId: "deltachat",
    sources: [{
      sourceId: "gplay",
      versionInteger: 758,
      versionString: "2.62.0",
      downloadUrl:
        "https://github.com/deltachat/deltachat-android/releases/download/v2.62.0/deltachat-gplay-release-2.62.0.apk",
    }],
  }],
};

/** Where release downloads may point (the reference's schema check). */
const URL_PREFIXES = ["https://github.com/deltachat/", "https://download.delta.chat/"];

const CLIENT_KEYS = ["clientId", "sources"];
const SOURCE_KEYS = ["downloadUrl", "sourceId", "versionInteger", "versionString"];

function sameKeys(o: Record<string, unknown>, keys: readonly string[]): boolean {
  const have = Object.keys(o).sort();
  return have.length === keys.length && have.every((k, i) => k === [...keys].sort()[i]);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Checks an app versions document against the reference's schema (exact key sets, unique
 * client and source ids, versionInteger a u32, download URLs on Delta Chat's hosts) and returns
 * it as one line of compact JSON. Throws an Error saying what is wrong.
 */
export function compactAppVersions(text: string): string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`App versions are not JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc) || !sameKeys(doc, ["clients"]) || !Array.isArray(doc.clients)) {
    throw new Error('App versions must be an object with exactly one key, "clients" (a list)');
  }
  const clientIds = new Set<string>();
  for (const [i, client] of doc.clients.entries()) {
    const where = `clients[${i}]`;
    if (!isObject(client) || !sameKeys(client, CLIENT_KEYS)) {
      throw new Error(`${where} must have exactly the keys ${CLIENT_KEYS.join(", ")}`);
    }
    if (typeof client.clientId !== "string" || client.clientId === "") {
      throw new Error(`${where}.clientId must be a non-empty string`);
    }
    if (clientIds.has(client.clientId)) {
      throw new Error(`${where}.clientId "${client.clientId}" is not unique`);
    }
    clientIds.add(client.clientId);
    if (!Array.isArray(client.sources)) throw new Error(`${where}.sources must be a list`);
    const sourceIds = new Set<string>();
    for (const [j, source] of client.sources.entries()) {
      const at = `${where}.sources[${j}]`;
      if (!isObject(source) || !sameKeys(source, SOURCE_KEYS)) {
        throw new Error(`${at} must have exactly the keys ${SOURCE_KEYS.join(", ")}`);
      }
      if (typeof source.sourceId !== "string" || source.sourceId === "") {
        throw new Error(`${at}.sourceId must be a non-empty string`);
      }
      if (sourceIds.has(source.sourceId)) {
        throw new Error(`${at}.sourceId "${source.sourceId}" is not unique`);
      }
      sourceIds.add(source.sourceId);
      const n = source.versionInteger;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
        throw new Error(`${at}.versionInteger must be an integer from 0 to 4294967295`);
      }
      if (typeof source.versionString !== "string" || source.versionString === "") {
        throw new Error(`${at}.versionString must be a non-empty string`);
      }
      const url = source.downloadUrl;
      if (typeof url !== "string" || !URL_PREFIXES.some((p) => url.startsWith(p))) {
        throw new Error(`${at}.downloadUrl must start with ${URL_PREFIXES.join(" or ")}`);
      }
    }
  }
  return JSON.stringify(doc);
}
