export { type ConnectOptions, type ExecuteOptions, QmpClient } from './client';
export * from './commands';
export { QmpClientError, QmpDisconnectedError, QmpError, QmpTimeoutError } from './errors';
export type { QmpEventListener, WaitForEventOptions } from './events';
export {
  encodeCommand,
  LineSplitter,
  parseMessage,
  QmpDecoder,
  type QmpErrorBody,
  type QmpEvent,
  type QmpGreeting,
  type QmpMessage,
  type QmpVersion,
} from './protocol';
