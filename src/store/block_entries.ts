// The blocklist entries that block an address: the address itself, "@domain" and a bare domain
// (older entries). Both stores look up the same three.

export function blockEntriesOf(address: string): [string, string, string] {
  const a = address.toLowerCase();
  const domain = a.slice(a.lastIndexOf("@") + 1);
  return [a, "@" + domain, domain];
}
