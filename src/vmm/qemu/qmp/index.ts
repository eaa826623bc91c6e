export {
  QmpClient,
  type ConnectOptions,
  type ExecuteOptions,
  type QmpEventListener,
  type WaitForEventOptions,
} from './client';
export * from './commands';
export { QmpClientError, QmpDisconnectedError, QmpError, QmpTimeoutError } from './errors';
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
