#!/usr/bin/env node
// Runs the TypeScript CLI without a build step: register tsx, then load the entry.
import { register } from 'tsx/esm/api';

register();
await import('../cli/flowtest.ts');
