/**
 * `T` with every key present, `undefined` allowed where `T` allows it: an object literal of this
 * type names all of `T`'s keys, so the compiler says when a new one is left out. For copies made
 * key by key rather than by a spread and then keys, which in this V8 give each object a hidden
 * class of its own (test/hidden-classes.test.ts).
 */
export type EveryKey<T> = { [K in keyof Required<T>]: T[K] }
