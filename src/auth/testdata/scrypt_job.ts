// A small scrypt job for the pool's tests (password_pool_test.ts and the scripts it runs).

export const job = (password: string) => ({
  password,
  salt: new Uint8Array(16).fill(7),
  n: 1024,
  r: 8,
  p: 1,
  keyLen: 32,
});
