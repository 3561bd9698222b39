/**
 * Which shard a channel lives on: jump consistent hashing (Lamping and
 * Veach, 2014) of the 64-bit FNV-1a hash of the channel's UTF-8 bytes, the
 * same choice as Centrifuge's `consistentIndex`. With N shards each gets
 * about 1/N of the channels, and going from N to N+1 shards moves only
 * about 1/(N+1) of them, all to the new shard.
 *
 * @module
 */

const MASK_64 = 0xffff_ffff_ffff_ffffn;
const JUMP_MULTIPLIER = 2862933555777941757n;
const TWO_POW_31 = 2 ** 31;
const TWO_POW_32 = 2 ** 32;
// FNV-1a 64: the offset basis in two 32-bit halves; the prime is 2^40 + 0x1b3.
const FNV_BASIS_HI = 0xcbf29ce4;
const FNV_BASIS_LO = 0x84222325;
const FNV_PRIME_LO = 0x1b3;

const encoder = new TextEncoder();

/**
 * The 64-bit FNV-1a hash of a text's UTF-8 bytes.
 *
 * Computed on two 32-bit halves rather than BigInt per byte: routing runs on
 * every publish, subscribe and history read.
 */
export function fnv1a64(text: string): bigint {
  let hi = FNV_BASIS_HI;
  let lo = FNV_BASIS_LO;
  for (const byte of encoder.encode(text)) {
    lo = (lo ^ byte) >>> 0;
    // (hi·2^32 + lo) · (2^40 + 0x1b3) mod 2^64, by halves.
    const low = lo * FNV_PRIME_LO; // < 2^41: exact in a double
    const carry = Math.floor(low / TWO_POW_32);
    hi = (Math.imul(hi, FNV_PRIME_LO) + carry + (lo << 8)) >>> 0;
    lo = low >>> 0;
  }
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * The bucket in [0, buckets) of a 64-bit key, by jump consistent hashing.
 *
 * @throws {RangeError} when `buckets` is not a positive integer.
 */
export function jumpHash(key: bigint, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1) {
    throw new RangeError(`Invalid bucket count: ${buckets}`);
  }
  let k = BigInt.asUintN(64, key);
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    k = (k * JUMP_MULTIPLIER + 1n) & MASK_64;
    j = Math.floor((b + 1) * (TWO_POW_31 / (Number(k >> 33n) + 1)));
  }
  return b;
}

/** The shard in [0, shards) of a channel: {@linkcode jumpHash} of its {@linkcode fnv1a64}. */
export function shardOf(channel: string, shards: number): number {
  return shards === 1 ? 0 : jumpHash(fnv1a64(channel), shards);
}
