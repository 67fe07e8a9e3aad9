export {
  dummyHash,
  hashPassword,
  needsRehash,
  passwordWork,
  SCRYPT_PARAMS,
  scryptHasher,
  verifyPassword,
} from "./passwords.ts";
export type { PasswordHasher } from "./passwords.ts";
export { LoginThrottle } from "./login_throttle.ts";
export type { Admission, LoginThrottleOptions } from "./login_throttle.ts";
