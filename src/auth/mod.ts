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
export { LoginThrottle, throttleParams } from "./login_throttle.ts";
export type {
  Admission,
  LoginGate,
  LoginThrottleOptions,
  ThrottleParams,
} from "./login_throttle.ts";
