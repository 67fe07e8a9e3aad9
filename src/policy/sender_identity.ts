// The sender identity of a message: the first address of its first From field, lowercased, the
// value the envelope sender is compared against (filtermail extract_address).

import {
  flattenAddresses,
  formatAddress,
  headerValue,
  type MimePart,
  parseAddressList,
} from "../mime/mod.ts";

/** "local@domain" of the first From mailbox, lowercased; undefined when there is none. */
export function fromHeaderAddress(root: MimePart): string | undefined {
  const value = headerValue(root, "from");
  if (value === undefined) return undefined;
  const first = flattenAddresses(parseAddressList(value))[0];
  return first?.local && first.domain ? formatAddress(first).toLowerCase() : undefined;
}
