import { NfError } from '../errors';
import type { Store, Versioned } from './store';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Finds a record by UUID or by its unique name (a name key holds the id). */
export async function findByRef<T>(
  store: Store,
  ref: string,
  kind: string,
  keyOf: (id: string) => string,
  nameKeyOf: (name: string) => string,
): Promise<Versioned<T>> {
  let id = ref;
  if (!UUID.test(ref)) {
    const byName = await store.get<string>(nameKeyOf(ref));
    if (!byName) throw new NfError('not_found', `no ${kind} named or with id "${ref}"`);
    id = byName.value;
  }
  const rec = await store.get<T>(keyOf(id));
  if (!rec) throw new NfError('not_found', `no ${kind} named or with id "${ref}"`);
  return rec;
}
