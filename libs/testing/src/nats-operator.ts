import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
} from '@nats-io/jwt';

/** A throwaway NATS operator with one JetStream account, for servers in operator (JWT) mode. */
export interface NatsOperatorSetup {
  /** nats-server config: `operator`, `system_account`, `resolver: MEMORY` and the preloaded account JWTs. */
  config: string;
  /** A `.creds` file's text (user JWT + seed) for a new user of the account. */
  userCreds(name: string): Promise<string>;
}

/**
 * Generates an operator, a system account and an account with JetStream enabled, signed with
 * `@nats-io/jwt`, and the server config that trusts them (`resolver: MEMORY`: no resolver service).
 */
export async function createNatsOperator(): Promise<NatsOperatorSetup> {
  const operator = createOperator();
  const system = createAccount();
  const account = createAccount();
  const operatorJwt = await encodeOperator('conveyor-test-operator', operator);
  const systemJwt = await encodeAccount('SYS', system, {}, { signer: operator });
  const accountJwt = await encodeAccount(
    'CONVEYOR',
    account,
    // JetStream is off for an account unless its JWT grants storage.
    {
      limits: {
        ...{ subs: -1, data: -1, payload: -1, conn: -1, leaf: -1, imports: -1, exports: -1, wildcards: true },
        mem_storage: -1,
        disk_storage: -1,
        streams: -1,
        consumer: -1,
      },
    },
    { signer: operator },
  );
  const config = [
    `operator: ${operatorJwt}`,
    `system_account: ${system.getPublicKey()}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${system.getPublicKey()}: ${systemJwt}`,
    `  ${account.getPublicKey()}: ${accountJwt}`,
    '}',
  ].join('\n');
  return {
    config,
    async userCreds(name: string): Promise<string> {
      const user = createUser();
      const jwt = await encodeUser(name, user, account);
      return new TextDecoder().decode(fmtCreds(jwt, user));
    },
  };
}
