export * from './messages';
export * from './frames';
export * from './flow';
export * from './headers';
export * from './errors';
export * from './poll';
export * from './public-address';
export * from './proxy-api';
