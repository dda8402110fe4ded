/** Shared Kafka plumbing: one way to get a kafkajs client, and producers placing keys as Java does. */
import kafkajs from 'kafkajs';
import type { Kafka as KafkaClient, KafkaConfig, Producer, ProducerConfig } from 'kafkajs';

const { Kafka, Partitioners, logLevel } = kafkajs;

/** A kafkajs client, or the configuration to build one (brokers, clientId, ssl, sasl...). */
export type KafkaLike = KafkaClient | KafkaConfig;

export function kafkaClient(kafka: KafkaLike, clientId: string): KafkaClient {
  if (kafka instanceof Kafka) return kafka;
  const config = kafka as KafkaConfig;
  // kafkajs logs INFO lines of its own by default; only its warnings and errors are wanted here.
  return new Kafka({ clientId, logLevel: logLevel.WARN, ...config });
}

/**
 * A producer whose partitioner is the Java-compatible murmur2 one (kafkajs's DefaultPartitioner,
 * named explicitly): a key lands on the same partition as from the Java client or aiokafka, so an
 * npub's token events and melt requests share a partition with the worker's tables.
 */
export function keyedProducer(kafka: KafkaClient, config: ProducerConfig = {}): Producer {
  return kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
    ...config,
  });
}

/** The partition kafkajs's DefaultPartitioner (murmur2, as Java and aiokafka) gives a key. */
export function partitionForKey(key: string | Buffer, partitionCount: number): number {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitionCount }, (_, partition) => ({
    partitionId: partition,
    leader: 0,
    replicas: [0],
    isr: [0],
    partitionErrorCode: 0,
  }));
  return partitioner({
    topic: 'any',
    partitionMetadata,
    message: { key: typeof key === 'string' ? Buffer.from(key, 'utf8') : key, value: null },
  });
}

/** Kafka key of wallet-facing topics: the npub's raw UTF-8 bytes (no JSON quoting). */
export function npubKey(npub: string): Buffer {
  return Buffer.from(npub, 'utf8');
}
