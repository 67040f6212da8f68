/** The package version, read once from package.json: the worker socket's User-Agent and `flowtest --version`. */
import { packageVersion } from '../shared/package-version.ts';

/** `version` from package.json. */
export const AGENT_VERSION: string = packageVersion();

/** The User-Agent header of the worker socket handshake. */
export const USER_AGENT = `flowtest-agent/${AGENT_VERSION}`;
