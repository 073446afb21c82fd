import type { Msg } from 'nats';
import type { InboundMessage } from '../run/message-port';

const ACK = Uint8Array.of(43, 65, 67, 75); // +ACK
const NAK = Uint8Array.of(45, 78, 65, 75); // -NAK
const WORKING = Uint8Array.of(43, 87, 80, 73); // +WPI
const encoder = new TextEncoder();

/**
 * A JetStream delivery read from its ack subject, settled by replying to it: the JetStream ack
 * protocol is plain publishes to that subject, so nothing here waits on the server. A lost ack only
 * means a redelivery after AckWait, and results are de-duplicated by `Nats-Msg-Id`.
 */
export class NatsInboundMessage implements InboundMessage {
  readonly stream: string;
  readonly deliveryCount: number;
  readonly streamSequence: number;
  readonly storedAtMs: number;
  private final = false;

  constructor(private readonly msg: Msg) {
    // $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (v1), or
    // $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>.<token> (v2).
    const t = msg.reply!.split('.');
    const o = t.length === 9 ? 0 : 2;
    this.stream = t[2 + o];
    this.deliveryCount = Number(t[4 + o]);
    this.streamSequence = Number(t[5 + o]);
    this.storedAtMs = Number(t[7 + o]) / 1e6;
  }

  /** True when `msg` is a JetStream delivery (not a pull status) that can be settled. */
  static isDelivery(msg: Msg): boolean {
    // Status messages (heartbeats, 408/409) carry no reply subject; deliveries carry their ack subject.
    return msg.reply !== undefined && msg.reply.startsWith('$JS.ACK.');
  }

  get subject(): string {
    return this.msg.subject;
  }

  get data(): Uint8Array {
    return this.msg.data;
  }

  ack(): void {
    this.settle(ACK);
  }

  nak(delayMs?: number): void {
    this.settle(delayMs ? encoder.encode(`-NAK ${JSON.stringify({ delay: delayMs * 1_000_000 })}`) : NAK);
  }

  term(reason: string): void {
    this.settle(encoder.encode(reason ? `+TERM ${reason}` : '+TERM'));
  }

  working(): void {
    if (!this.final) this.msg.respond(WORKING);
  }

  private settle(verb: Uint8Array): void {
    if (this.final) return;
    this.final = true;
    this.msg.respond(verb);
  }
}
