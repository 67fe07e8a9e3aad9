export {
  acmeDomains,
  AcmeManager,
  isIpLiteral,
  LETS_ENCRYPT_DIRECTORY,
  LETS_ENCRYPT_STAGING_DIRECTORY,
  renewalTime,
  retryDelay,
} from "./manager.ts";
export type { AcmeCertificateFiles, AcmeOptions, AcmeResult, AcmeState } from "./manager.ts";
