/**
 * A scriptable QMP server on a real unix socket, for tests. It greets, accepts
 * qmp_capabilities on its own, and hands every other command to the test.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { LineSplitter } from './protocol';

export interface FakeCommand {
  execute: string;
  arguments?: Record<string, unknown>;
  id?: unknown;
}

export const FAKE_GREETING = {
  QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'fake' }, capabilities: ['oob'] },
};

export class FakeQmpServer {
  readonly commands: FakeCommand[] = [];
  connection: Socket | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly commandWaiters = new Set<() => void>();
  private readonly connectionWaiters = new Set<() => void>();

  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  /** `greet: false` accepts connections but never greets (simulates a busy monitor). */
  static listen(path: string, opts: { greet?: boolean } = {}): Promise<FakeQmpServer> {
    const server = createServer();
    const fake = new FakeQmpServer(server, path);
    server.on('connection', (sock) => fake.accept(sock, opts.greet ?? true));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve(fake));
    });
  }

  private accept(sock: Socket, greet: boolean): void {
    this.sockets.add(sock);
    this.connection = sock;
    sock.on('error', () => {});
    sock.on('close', () => this.sockets.delete(sock));
    const lines = new LineSplitter();
    sock.on('data', (chunk: Buffer) => {
      for (const line of lines.push(chunk)) {
        const cmd = JSON.parse(line) as FakeCommand;
        if (cmd.execute === 'qmp_capabilities') this.send({ return: {}, id: cmd.id });
        this.commands.push(cmd);
        for (const w of [...this.commandWaiters]) w();
      }
    });
    if (greet) this.send(FAKE_GREETING);
    for (const w of [...this.connectionWaiters]) w();
  }

  send(msg: unknown): void {
    this.sendRaw(`${JSON.stringify(msg)}\r\n`);
  }

  sendRaw(text: string): void {
    if (!this.connection) throw new Error('no client connected');
    this.connection.write(text);
  }

  reply(cmd: FakeCommand, value: unknown = {}): void {
    this.send({ return: value, id: cmd.id });
  }

  fail(cmd: FakeCommand, errorClass: string, desc: string): void {
    this.send({ id: cmd.id, error: { class: errorClass, desc } });
  }

  event(name: string, data?: Record<string, unknown>): void {
    this.send({ event: name, data, timestamp: { seconds: 1, microseconds: 2 } });
  }

  /** Resolves with the first `count` commands named `name` once that many have arrived in total. */
  waitForCommands(name: string, count = 1): Promise<FakeCommand[]> {
    return new Promise((resolve) => {
      const check = () => {
        const found = this.commands.filter((c) => c.execute === name);
        if (found.length < count) return false;
        this.commandWaiters.delete(waiter);
        resolve(found.slice(0, count));
        return true;
      };
      const waiter = () => void check();
      if (!check()) this.commandWaiters.add(waiter);
    });
  }

  async waitForCommand(name: string): Promise<FakeCommand> {
    const [cmd] = await this.waitForCommands(name, 1);
    return cmd as FakeCommand;
  }

  waitForConnection(): Promise<Socket> {
    return new Promise((resolve) => {
      if (this.connection) return resolve(this.connection);
      const waiter = () => {
        this.connectionWaiters.delete(waiter);
        resolve(this.connection as Socket);
      };
      this.connectionWaiters.add(waiter);
    });
  }

  /** Drops every client connection without a reply, like QEMU exiting. */
  dropClients(): void {
    for (const s of this.sockets) s.destroy();
  }

  close(): Promise<void> {
    this.dropClients();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
