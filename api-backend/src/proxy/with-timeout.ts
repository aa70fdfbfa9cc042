// One implementation for every package, in protocol/; kept here so the drivers' imports stay put.
export { withTimeout } from '@ctll/protocol';
