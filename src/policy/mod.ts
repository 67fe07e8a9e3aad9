export { checkArmoredPayload, checkOpenpgpPacketStream } from "./openpgp_packets.ts";
