export { hashPassword, verifyPassword } from "./passwords.ts";
export { LoginThrottle } from "./login_throttle.ts";
export type { LoginThrottleOptions } from "./login_throttle.ts";
