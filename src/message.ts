// A message as it travels from the source to the sinks: a plain value, no broker state. Its
// acknowledgement travels beside it as a separate handle (source/ack-window.ts).

export type UserProperties = Record<string, string | string[]>;

/** The MQTT 5 PUBLISH properties sluice carries on. */
export interface MqttProperties {
  readonly userProperties?: UserProperties;
  readonly contentType?: string;
  readonly correlationData?: Buffer;
  readonly responseTopic?: string;
  /** Seconds left when the broker sent it (the broker counts down while it queues). */
  readonly messageExpiryInterval?: number;
  readonly payloadFormatIndicator?: boolean;
}

export interface Message {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
  readonly properties: MqttProperties;
  /** Epoch milliseconds at which sluice read it off the socket. */
  readonly receivedAt: number;
  /** The packet id it arrived with (QoS 1 and 2): the audit log records it; its exactly-once ledger keys on it. */
  readonly packetId?: number | undefined;
  /** The broker set DUP: it sent this PUBLISH before (a redelivery, perhaps from a rolled-back state). */
  readonly dup?: boolean | undefined;
}
