// Generated from the CRD YAML in crds/ by `npm run generate`. Do not edit by hand.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { JSONSchema } from './schema.js';

/** Where StreamBudget objects live in the API. */
export const streamBudgetResource = {"group":"sluice.dev","version":"v1alpha1","plural":"streambudgets","kind":"StreamBudget","apiVersion":"sluice.dev/v1alpha1"} as const;

/** Where StreamLease objects live in the API. */
export const streamLeaseResource = {"group":"sluice.dev","version":"v1alpha1","plural":"streamleases","kind":"StreamLease","apiVersion":"sluice.dev/v1alpha1"} as const;

/** Secret holding the provider's API key. When set, the sidecar sends "Authorization: Token <key>" upstream itself and applications need no key. */
export interface StreamBudgetSpecApiKeySecretRef {
  /** Name of a Secret in the budget's namespace. */
  name: string;
  /** Key within the Secret's data that holds the API key. */
  key: string;
}

/** Which streams count against this budget. A stream is charged to every budget that matches it and admitted only if all of them have room. Left out, the budget covers every stream of its pods. */
export interface StreamBudgetSpecMatch {
  /** Request paths this budget covers, e.g. /v2/listen (Flux) or /v1/listen (Nova). Any path when left out. */
  paths?: string[];
  /** Values of the stream's "model" query parameter this budget covers; "*" matches any run of characters, e.g. flux-general-*. Any model when left out. */
  models?: string[];
}

export interface StreamBudgetSpecPodSelectorMatchExpression {
  /** The label key the requirement applies to. */
  key: string;
  /** How the key relates to the values. */
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  /** Values for In and NotIn; empty for Exists and DoesNotExist. */
  values?: string[];
}

/** Pods that share this budget; each gets a StreamLease and a grant. It must select something: an empty selector would claim every pod in the namespace. */
export interface StreamBudgetSpecPodSelector {
  /** Labels a pod must carry, as key/value pairs. */
  matchLabels?: Record<string, string>;
  /** Label requirements that a pod must all meet. */
  matchExpressions?: StreamBudgetSpecPodSelectorMatchExpression[];
}

/** Models a provider whose new-session limit scales with use: at or above scaleUpAtPercent of the current limit it grows by stepPercent every intervalSeconds, up to maxPerMinute; below scaleDownBelowPercent it shrinks back toward perMinute. The operator's model of that limit is never above it: whenever in the interval the provider steps, the model follows on the use it saw then, at most one interval behind under steady use, and falls as soon as any limit the provider could hold could have fallen. */
export interface StreamBudgetSpecNewSessionsAutoscale {
  /** Use of the current limit, in percent, at or above which it grows. */
  scaleUpAtPercent: number;
  /** How much the limit grows or shrinks per interval, in percent of the current limit. */
  stepPercent: number;
  /** Seconds between two steps of the limit. */
  intervalSeconds: number;
  /** Use of the current limit, in percent, below which it shrinks toward perMinute. */
  scaleDownBelowPercent: number;
  /** Ceiling of the scaled limit. Unbounded growth is not modelled, so it is required. */
  maxPerMinute: number;
}

/** Optional second budget: how many streams may start per minute across the fleet. Each pod may start its share in any 61 s; the shares, with the starts still inside the window of capacity a pod gave up, stay within it. */
export interface StreamBudgetSpecNewSessions {
  /** Streams that may start in any 60 s window (the provider's default limit when it autoscales). */
  perMinute: number;
  /** Models a provider whose new-session limit scales with use: at or above scaleUpAtPercent of the current limit it grows by stepPercent every intervalSeconds, up to maxPerMinute; below scaleDownBelowPercent it shrinks back toward perMinute. The operator's model of that limit is never above it: whenever in the interval the provider steps, the model follows on the use it saw then, at most one interval behind under steady use, and falls as soon as any limit the provider could hold could have fallen. */
  autoscale?: StreamBudgetSpecNewSessionsAutoscale;
}

/** How the budget is split across the pods. */
export interface StreamBudgetSpecAllocation {
  /** Demand moves grants to the pods that use them (with a per-pod minimum that idle pods lend out); Equal splits the budget evenly, whatever the demand. */
  strategy: "Demand" | "Equal";
  /** Streams each pod is guaranteed whenever it asks for them. Must not exceed the limit. */
  minPerPod: number;
  /** How long a pod's lease stays valid without a heartbeat. A sidecar that cannot renew stops admitting before it runs out; the operator keeps a silent pod's share reserved after it. */
  leaseDurationSeconds: number;
}

/** What a stream that finds no room does. */
export interface StreamBudgetSpecAdmission {
  /** Milliseconds a stream waits in the pod's FIFO queue for room before it is rejected with HTTP 429. 0 rejects at once. */
  queueTimeoutMs: number;
  /** Streams that may wait at once in each pod; past it, new ones are rejected at once. */
  maxQueueLength: number;
}

/** When the sidecar ends a stream on its own, and how long an unclean end keeps counting. */
export interface StreamBudgetSpecReaping {
  /** A stream whose client sends nothing for this long is ended. */
  idleTimeoutSeconds: number;
  /** The sidecar pings the client this often; a client that misses a pong is ended. */
  pingIntervalSeconds: number;
  /** Longest a stream may last. */
  maxStreamSeconds: number;
  /** How long the provider keeps counting a stream that ended uncleanly (no completed close handshake, a reset, a timeout). sluice holds the stream's slot 2 seconds longer than this, because the provider may notice the end later than the sidecar does. */
  upstreamReleaseDelaySeconds: number;
}

/** The budget as declared by its owner. */
export interface StreamBudgetSpec {
  /** The speech-to-text provider whose protocol the sidecar speaks. */
  provider: "deepgram";
  /** The provider's project the streams are billed and limited under. Budgets naming the same project add up upstream; the operator reports that in a condition. */
  projectId: string;
  /** Base URL the sidecars dial, ws:// or wss:// with a host. The path and query of each stream are appended unchanged. */
  upstream: string;
  /** Secret holding the provider's API key. When set, the sidecar sends "Authorization: Token <key>" upstream itself and applications need no key. */
  apiKeySecretRef?: StreamBudgetSpecApiKeySecretRef;
  /** Which streams count against this budget. A stream is charged to every budget that matches it and admitted only if all of them have room. Left out, the budget covers every stream of its pods. */
  match?: StreamBudgetSpecMatch;
  /** Pods that share this budget; each gets a StreamLease and a grant. It must select something: an empty selector would claim every pod in the namespace. */
  podSelector: StreamBudgetSpecPodSelector;
  /** Streams the fleet may have open upstream at once, counted as the provider counts them (slots of streams that ended uncleanly included). Deepgram's pay-as-you-go plan allows 150 per project. */
  maxConcurrentStreams: number;
  /** Optional second budget: how many streams may start per minute across the fleet. Each pod may start its share in any 61 s; the shares, with the starts still inside the window of capacity a pod gave up, stay within it. */
  newSessions?: StreamBudgetSpecNewSessions;
  /** How the budget is split across the pods. */
  allocation: StreamBudgetSpecAllocation;
  /** What a stream that finds no room does. */
  admission: StreamBudgetSpecAdmission;
  /** When the sidecar ends a stream on its own, and how long an unclean end keeps counting. */
  reaping: StreamBudgetSpecReaping;
}

export interface StreamBudgetStatusCondition {
  /** Type of the condition, e.g. Ready or Degraded. */
  type: string;
  /** True, False or Unknown. */
  status: "True" | "False" | "Unknown";
  /** The spec generation the condition was set for. */
  observedGeneration?: number;
  /** When the condition last changed status. */
  lastTransitionTime: string;
  /** One word in CamelCase saying why. */
  reason: string;
  /** What a person needs to know, in a sentence. */
  message: string;
}

/** What the operator observed and decided; written only by the operator. */
export interface StreamBudgetStatus {
  /** The spec generation this status describes. */
  observedGeneration?: number;
  /** Ready is True while the budget is enforced as declared. Degraded names what is wrong, with reasons UpstreamRejecting, OverCommitted, LeasesStale, NoPods or ProjectSharedAcrossBudgets. */
  conditions?: StreamBudgetStatusCondition[];
  /** Pods sharing the budget (selected, running or draining). */
  pods?: number;
  /** Sum of the concurrency granted to the pods. */
  allocated?: number;
  /** Streams open upstream across the fleet, stale slots included. */
  inUse?: number;
  /** Streams waiting for room across the fleet. */
  queued?: number;
  /** Highest inUse reported within the last peakWindowSeconds. */
  peakInUse?: number;
  /** The window over which peakInUse is taken. */
  peakWindowSeconds?: number;
  /** The new-session limit the fleet is held to now, when the budget has one: with autoscale, the lowest limit the provider can hold. */
  newSessionsPerMinute?: number;
  /** With autoscale, the highest new-session limit the provider can hold now. */
  newSessionsCeilingPerMinute?: number;
  /** Streams admitted since the budget was created. */
  admittedTotal?: number;
  /** Streams the sidecars rejected locally (HTTP 429) since the budget was created. */
  rejectedTotal?: number;
  /** Streams the sidecars ended on their own (idle, missed pong, too long). */
  reapedTotal?: number;
  /** Handshakes the provider refused (e.g. HTTP 429) since the budget was created. */
  upstreamRejectedTotal?: number;
}

/** StreamBudget declares the streaming limits of one speech-to-text provider project and the pods that share them. The sluice operator splits the budget across those pods by demand and never lets the fleet exceed it; the sluice sidecar in each pod enforces the pod's share. */
export interface StreamBudget {
  apiVersion: "sluice.dev/v1alpha1";
  kind: "StreamBudget";
  metadata: V1ObjectMeta;
  /** The budget as declared by its owner. */
  spec: StreamBudgetSpec;
  /** What the operator observed and decided; written only by the operator. */
  status?: StreamBudgetStatus;
}

/** What the pod may use. */
export interface StreamLeaseSpecGrant {
  /** Streams the pod may have open upstream at once. */
  concurrency: number;
  /** New streams the pod may start in any 61 s (the provider's 60 s window and a 1 s margin for a handshake to reach it). Absent when the budget has no new-session limit. */
  newSessionsPerMinute?: number;
}

/** The grant, written only by the operator. */
export interface StreamLeaseSpec {
  /** Name of the StreamBudget, in the same namespace. */
  budgetName: string;
  /** Name of the pod holding the lease. */
  podName: string;
  /** UID of that pod, so a pod recreated under the same name never inherits the lease. */
  podUID: string;
  /** What the pod may use. */
  grant: StreamLeaseSpecGrant;
  /** Grows with every change of the grant; the sidecar acknowledges it in status.observedEpoch. */
  epoch: number;
}

/** The grant the sidecar enforces now. */
export interface StreamLeaseStatusGrant {
  /** Streams the pod may have open upstream at once. */
  concurrency?: number;
  /** New streams the pod may start in any 61 s. */
  newSessionsPerMinute?: number;
}

/** What the sidecar enforces and uses, written only by that pod's sidecar. */
export interface StreamLeaseStatus {
  /** The spec epoch whose grant the sidecar has put in force. */
  observedEpoch?: number;
  /** The grant the sidecar enforces now. */
  grant?: StreamLeaseStatusGrant;
  /** Streams open upstream plus slots still held after unclean ends. */
  inUse?: number;
  /** The part of inUse held after unclean ends or a sidecar restart. */
  staleSlots?: number;
  /** Streams waiting for room. */
  queued?: number;
  /** Recent peak of inUse + queued + rejected, rising at once and decaying slowly. */
  demand?: number;
  /** Streams started in the last 60 s. */
  sessionsLastMinute?: number;
  /** New streams the pod wants per minute: starts and handshakes refused for the new-session rate, at the rate of the last 10 s, plus streams waiting. */
  sessionDemand?: number;
  /** The starts inside the pod's 61 s new-session window when this status was written, by the second in which they leave it: the first entry counts those that leave within 1 s, the second within 2 s, and so on. The operator frees new-session capacity a pod gave up as these leave. */
  sessionWindow?: number[];
  /** The part of sessionWindow held for an earlier run of the sidecar, laid out the same way: starts that run may have made, not known to have been. The operator counts only the rest as starts the provider surely sees. */
  sessionWindowInherited?: number[];
  /** Streams admitted since the lease was created. */
  admittedTotal?: number;
  /** Streams rejected locally since the lease was created. */
  rejectedTotal?: number;
  /** Streams the sidecar ended on its own since the lease was created. */
  reapedTotal?: number;
  /** Handshakes the provider refused since the lease was created. */
  upstreamRejectedTotal?: number;
  /** When the sidecar wrote this status. */
  heartbeatTime?: string;
}

/** StreamLease is one pod's share of one StreamBudget. The operator writes the grant into spec and raises its epoch with every change; the pod's sidecar enforces the grant and acknowledges the epoch in status, together with its usage. */
export interface StreamLease {
  apiVersion: "sluice.dev/v1alpha1";
  kind: "StreamLease";
  metadata: V1ObjectMeta;
  /** The grant, written only by the operator. */
  spec: StreamLeaseSpec;
  /** What the sidecar enforces and uses, written only by that pod's sidecar. */
  status?: StreamLeaseStatus;
}

/** Each kind with its openAPIV3Schema, exactly as in the CRD YAML. */
export const apiResources = {
  StreamBudget: { ...streamBudgetResource, schema: {"type":"object","description":"StreamBudget declares the streaming limits of one speech-to-text provider project and the pods that share them. The sluice operator splits the budget across those pods by demand and never lets the fleet exceed it; the sluice sidecar in each pod enforces the pod's share.","required":["spec"],"properties":{"apiVersion":{"type":"string","description":"APIVersion defines the versioned schema of this representation of an object."},"kind":{"type":"string","description":"Kind is a string value representing the REST resource this object represents."},"metadata":{"type":"object"},"spec":{"type":"object","description":"The budget as declared by its owner.","required":["projectId","podSelector","maxConcurrentStreams"],"x-kubernetes-validations":[{"rule":"self.allocation.minPerPod <= self.maxConcurrentStreams","fieldPath":".allocation.minPerPod","reason":"FieldValueInvalid","message":"must not be greater than spec.maxConcurrentStreams"}],"properties":{"provider":{"type":"string","description":"The speech-to-text provider whose protocol the sidecar speaks.","enum":["deepgram"],"default":"deepgram"},"projectId":{"type":"string","description":"The provider's project the streams are billed and limited under. Budgets naming the same project add up upstream; the operator reports that in a condition.","minLength":1,"maxLength":128,"pattern":"^[A-Za-z0-9][A-Za-z0-9._-]*$"},"upstream":{"type":"string","description":"Base URL the sidecars dial, ws:// or wss:// with a host. The path and query of each stream are appended unchanged.","default":"wss://api.deepgram.com","maxLength":2048,"x-kubernetes-validations":[{"rule":"isURL(self) && url(self).getScheme() in ['ws', 'wss'] && url(self).getHostname() != ''","reason":"FieldValueInvalid","message":"must be a ws:// or wss:// URL with a host, e.g. wss://api.deepgram.com"},{"rule":"!self.contains('?') && !self.contains('#')","reason":"FieldValueInvalid","message":"must not carry a query or a fragment; streams bring their own"}]},"apiKeySecretRef":{"type":"object","description":"Secret holding the provider's API key. When set, the sidecar sends \"Authorization: Token <key>\" upstream itself and applications need no key.","required":["name","key"],"properties":{"name":{"type":"string","description":"Name of a Secret in the budget's namespace.","minLength":1,"maxLength":253,"pattern":"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"},"key":{"type":"string","description":"Key within the Secret's data that holds the API key.","minLength":1,"maxLength":253,"pattern":"^[-._a-zA-Z0-9]+$"}}},"match":{"type":"object","description":"Which streams count against this budget. A stream is charged to every budget that matches it and admitted only if all of them have room. Left out, the budget covers every stream of its pods.","properties":{"paths":{"type":"array","description":"Request paths this budget covers, e.g. /v2/listen (Flux) or /v1/listen (Nova). Any path when left out.","minItems":1,"maxItems":16,"x-kubernetes-list-type":"set","items":{"type":"string","minLength":1,"maxLength":256,"pattern":"^/[^?#\\s]*$"}},"models":{"type":"array","description":"Values of the stream's \"model\" query parameter this budget covers; \"*\" matches any run of characters, e.g. flux-general-*. Any model when left out.","minItems":1,"maxItems":32,"x-kubernetes-list-type":"set","items":{"type":"string","minLength":1,"maxLength":128,"pattern":"^[A-Za-z0-9*._:-]+$"}}}},"podSelector":{"type":"object","description":"Pods that share this budget; each gets a StreamLease and a grant. It must select something: an empty selector would claim every pod in the namespace.","x-kubernetes-map-type":"atomic","x-kubernetes-validations":[{"rule":"(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)","reason":"FieldValueRequired","message":"must not be empty; set matchLabels or matchExpressions"}],"properties":{"matchLabels":{"type":"object","description":"Labels a pod must carry, as key/value pairs.","maxProperties":32,"additionalProperties":{"type":"string","maxLength":63,"pattern":"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"}},"matchExpressions":{"type":"array","description":"Label requirements that a pod must all meet.","maxItems":32,"x-kubernetes-list-type":"atomic","items":{"type":"object","required":["key","operator"],"x-kubernetes-validations":[{"rule":"self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)","fieldPath":".values","reason":"FieldValueInvalid","message":"must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"}],"properties":{"key":{"type":"string","description":"The label key the requirement applies to.","minLength":1,"maxLength":317,"pattern":"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"},"operator":{"type":"string","description":"How the key relates to the values.","enum":["In","NotIn","Exists","DoesNotExist"]},"values":{"type":"array","description":"Values for In and NotIn; empty for Exists and DoesNotExist.","maxItems":64,"x-kubernetes-list-type":"atomic","items":{"type":"string","maxLength":63,"pattern":"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"}}}}}}},"maxConcurrentStreams":{"type":"integer","format":"int32","description":"Streams the fleet may have open upstream at once, counted as the provider counts them (slots of streams that ended uncleanly included). Deepgram's pay-as-you-go plan allows 150 per project.","minimum":1,"maximum":1000000},"newSessions":{"type":"object","description":"Optional second budget: how many streams may start per minute across the fleet. Each pod may start its share in any 61 s; the shares, with the starts still inside the window of capacity a pod gave up, stay within it.","required":["perMinute"],"x-kubernetes-validations":[{"rule":"!has(self.autoscale) || !has(self.autoscale.maxPerMinute) || self.autoscale.maxPerMinute >= self.perMinute","fieldPath":".autoscale.maxPerMinute","reason":"FieldValueInvalid","message":"must not be below spec.newSessions.perMinute"}],"properties":{"perMinute":{"type":"integer","format":"int32","description":"Streams that may start in any 60 s window (the provider's default limit when it autoscales).","minimum":1,"maximum":1000000},"autoscale":{"type":"object","description":"Models a provider whose new-session limit scales with use: at or above scaleUpAtPercent of the current limit it grows by stepPercent every intervalSeconds, up to maxPerMinute; below scaleDownBelowPercent it shrinks back toward perMinute. The operator's model of that limit is never above it: whenever in the interval the provider steps, the model follows on the use it saw then, at most one interval behind under steady use, and falls as soon as any limit the provider could hold could have fallen.","x-kubernetes-validations":[{"rule":"self.scaleDownBelowPercent < self.scaleUpAtPercent","fieldPath":".scaleDownBelowPercent","reason":"FieldValueInvalid","message":"must be below spec.newSessions.autoscale.scaleUpAtPercent"}],"properties":{"scaleUpAtPercent":{"type":"integer","format":"int32","description":"Use of the current limit, in percent, at or above which it grows.","minimum":1,"maximum":100,"default":70},"stepPercent":{"type":"integer","format":"int32","description":"How much the limit grows or shrinks per interval, in percent of the current limit.","minimum":1,"maximum":100,"default":10},"intervalSeconds":{"type":"integer","format":"int32","description":"Seconds between two steps of the limit.","minimum":1,"maximum":3600,"default":60},"scaleDownBelowPercent":{"type":"integer","format":"int32","description":"Use of the current limit, in percent, below which it shrinks toward perMinute.","minimum":0,"maximum":99,"default":50},"maxPerMinute":{"type":"integer","format":"int32","description":"Ceiling of the scaled limit. Unbounded growth is not modelled, so it is required.","minimum":1,"maximum":10000000}},"required":["maxPerMinute"]}}},"allocation":{"type":"object","description":"How the budget is split across the pods.","default":{},"properties":{"strategy":{"type":"string","description":"Demand moves grants to the pods that use them (with a per-pod minimum that idle pods lend out); Equal splits the budget evenly, whatever the demand.","enum":["Demand","Equal"],"default":"Demand"},"minPerPod":{"type":"integer","format":"int32","description":"Streams each pod is guaranteed whenever it asks for them. Must not exceed the limit.","minimum":0,"maximum":1000000,"default":1},"leaseDurationSeconds":{"type":"integer","format":"int32","description":"How long a pod's lease stays valid without a heartbeat. A sidecar that cannot renew stops admitting before it runs out; the operator keeps a silent pod's share reserved after it.","minimum":2,"maximum":3600,"default":30}}},"admission":{"type":"object","description":"What a stream that finds no room does.","default":{},"properties":{"queueTimeoutMs":{"type":"integer","format":"int32","description":"Milliseconds a stream waits in the pod's FIFO queue for room before it is rejected with HTTP 429. 0 rejects at once.","minimum":0,"maximum":600000,"default":2000},"maxQueueLength":{"type":"integer","format":"int32","description":"Streams that may wait at once in each pod; past it, new ones are rejected at once.","minimum":0,"maximum":100000,"default":100}}},"reaping":{"type":"object","description":"When the sidecar ends a stream on its own, and how long an unclean end keeps counting.","default":{},"x-kubernetes-validations":[{"rule":"!has(self.pingIntervalSeconds) || !has(self.maxStreamSeconds) || self.pingIntervalSeconds < self.maxStreamSeconds","fieldPath":".pingIntervalSeconds","reason":"FieldValueInvalid","message":"must be below spec.reaping.maxStreamSeconds"}],"properties":{"idleTimeoutSeconds":{"type":"integer","format":"int32","description":"A stream whose client sends nothing for this long is ended.","minimum":1,"maximum":86400,"default":30},"pingIntervalSeconds":{"type":"integer","format":"int32","description":"The sidecar pings the client this often; a client that misses a pong is ended.","minimum":1,"maximum":3600,"default":15},"maxStreamSeconds":{"type":"integer","format":"int32","description":"Longest a stream may last.","minimum":1,"maximum":604800,"default":14400},"upstreamReleaseDelaySeconds":{"type":"integer","format":"int32","description":"How long the provider keeps counting a stream that ended uncleanly (no completed close handshake, a reset, a timeout). sluice holds the stream's slot 2 seconds longer than this, because the provider may notice the end later than the sidecar does.","minimum":0,"maximum":3600,"default":10}}}}},"status":{"type":"object","description":"What the operator observed and decided; written only by the operator.","properties":{"observedGeneration":{"type":"integer","format":"int64","description":"The spec generation this status describes.","minimum":0},"conditions":{"type":"array","description":"Ready is True while the budget is enforced as declared. Degraded names what is wrong, with reasons UpstreamRejecting, OverCommitted, LeasesStale, NoPods or ProjectSharedAcrossBudgets.","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["type"],"maxItems":16,"items":{"type":"object","required":["type","status","lastTransitionTime","reason","message"],"properties":{"type":{"type":"string","description":"Type of the condition, e.g. Ready or Degraded.","minLength":1,"maxLength":316,"pattern":"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"},"status":{"type":"string","description":"True, False or Unknown.","enum":["True","False","Unknown"]},"observedGeneration":{"type":"integer","format":"int64","description":"The spec generation the condition was set for.","minimum":0},"lastTransitionTime":{"type":"string","format":"date-time","description":"When the condition last changed status."},"reason":{"type":"string","description":"One word in CamelCase saying why.","minLength":1,"maxLength":1024,"pattern":"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"},"message":{"type":"string","description":"What a person needs to know, in a sentence.","maxLength":32768}}}},"pods":{"type":"integer","format":"int32","description":"Pods sharing the budget (selected, running or draining).","minimum":0},"allocated":{"type":"integer","format":"int32","description":"Sum of the concurrency granted to the pods.","minimum":0},"inUse":{"type":"integer","format":"int32","description":"Streams open upstream across the fleet, stale slots included.","minimum":0},"queued":{"type":"integer","format":"int32","description":"Streams waiting for room across the fleet.","minimum":0},"peakInUse":{"type":"integer","format":"int32","description":"Highest inUse reported within the last peakWindowSeconds.","minimum":0},"peakWindowSeconds":{"type":"integer","format":"int32","description":"The window over which peakInUse is taken.","minimum":0},"newSessionsPerMinute":{"type":"integer","format":"int32","description":"The new-session limit the fleet is held to now, when the budget has one: with autoscale, the lowest limit the provider can hold.","minimum":0},"newSessionsCeilingPerMinute":{"type":"integer","format":"int32","description":"With autoscale, the highest new-session limit the provider can hold now.","minimum":0},"admittedTotal":{"type":"integer","format":"int64","description":"Streams admitted since the budget was created.","minimum":0},"rejectedTotal":{"type":"integer","format":"int64","description":"Streams the sidecars rejected locally (HTTP 429) since the budget was created.","minimum":0},"reapedTotal":{"type":"integer","format":"int64","description":"Streams the sidecars ended on their own (idle, missed pong, too long).","minimum":0},"upstreamRejectedTotal":{"type":"integer","format":"int64","description":"Handshakes the provider refused (e.g. HTTP 429) since the budget was created.","minimum":0}}}}} as JSONSchema },
  StreamLease: { ...streamLeaseResource, schema: {"type":"object","description":"StreamLease is one pod's share of one StreamBudget. The operator writes the grant into spec and raises its epoch with every change; the pod's sidecar enforces the grant and acknowledges the epoch in status, together with its usage.","required":["spec"],"properties":{"apiVersion":{"type":"string","description":"APIVersion defines the versioned schema of this representation of an object."},"kind":{"type":"string","description":"Kind is a string value representing the REST resource this object represents."},"metadata":{"type":"object"},"spec":{"type":"object","description":"The grant, written only by the operator.","required":["budgetName","podName","podUID","grant","epoch"],"properties":{"budgetName":{"type":"string","description":"Name of the StreamBudget, in the same namespace.","minLength":1,"maxLength":253,"pattern":"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$","x-kubernetes-validations":[{"rule":"self == oldSelf","message":"is immutable"}]},"podName":{"type":"string","description":"Name of the pod holding the lease.","minLength":1,"maxLength":253,"pattern":"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$","x-kubernetes-validations":[{"rule":"self == oldSelf","message":"is immutable"}]},"podUID":{"type":"string","description":"UID of that pod, so a pod recreated under the same name never inherits the lease.","minLength":1,"maxLength":64,"x-kubernetes-validations":[{"rule":"self == oldSelf","message":"is immutable"}]},"grant":{"type":"object","description":"What the pod may use.","required":["concurrency"],"properties":{"concurrency":{"type":"integer","format":"int32","description":"Streams the pod may have open upstream at once.","minimum":0,"maximum":1000000},"newSessionsPerMinute":{"type":"integer","format":"int32","description":"New streams the pod may start in any 61 s (the provider's 60 s window and a 1 s margin for a handshake to reach it). Absent when the budget has no new-session limit.","minimum":0,"maximum":10000000}}},"epoch":{"type":"integer","format":"int64","description":"Grows with every change of the grant; the sidecar acknowledges it in status.observedEpoch.","minimum":0,"x-kubernetes-validations":[{"rule":"self >= oldSelf","message":"must not decrease"}]}}},"status":{"type":"object","description":"What the sidecar enforces and uses, written only by that pod's sidecar.","properties":{"observedEpoch":{"type":"integer","format":"int64","description":"The spec epoch whose grant the sidecar has put in force.","minimum":0},"grant":{"type":"object","description":"The grant the sidecar enforces now.","properties":{"concurrency":{"type":"integer","format":"int32","description":"Streams the pod may have open upstream at once.","minimum":0,"maximum":1000000},"newSessionsPerMinute":{"type":"integer","format":"int32","description":"New streams the pod may start in any 61 s.","minimum":0,"maximum":10000000}}},"inUse":{"type":"integer","format":"int32","description":"Streams open upstream plus slots still held after unclean ends.","minimum":0},"staleSlots":{"type":"integer","format":"int32","description":"The part of inUse held after unclean ends or a sidecar restart.","minimum":0},"queued":{"type":"integer","format":"int32","description":"Streams waiting for room.","minimum":0},"demand":{"type":"integer","format":"int32","description":"Recent peak of inUse + queued + rejected, rising at once and decaying slowly.","minimum":0},"sessionsLastMinute":{"type":"integer","format":"int32","description":"Streams started in the last 60 s.","minimum":0},"sessionDemand":{"type":"integer","format":"int32","description":"New streams the pod wants per minute: starts and handshakes refused for the new-session rate, at the rate of the last 10 s, plus streams waiting.","minimum":0},"sessionWindow":{"type":"array","description":"The starts inside the pod's 61 s new-session window when this status was written, by the second in which they leave it: the first entry counts those that leave within 1 s, the second within 2 s, and so on. The operator frees new-session capacity a pod gave up as these leave.","maxItems":61,"items":{"type":"integer","format":"int32","minimum":0,"maximum":10000000}},"sessionWindowInherited":{"type":"array","description":"The part of sessionWindow held for an earlier run of the sidecar, laid out the same way: starts that run may have made, not known to have been. The operator counts only the rest as starts the provider surely sees.","maxItems":61,"items":{"type":"integer","format":"int32","minimum":0,"maximum":10000000}},"admittedTotal":{"type":"integer","format":"int64","description":"Streams admitted since the lease was created.","minimum":0},"rejectedTotal":{"type":"integer","format":"int64","description":"Streams rejected locally since the lease was created.","minimum":0},"reapedTotal":{"type":"integer","format":"int64","description":"Streams the sidecar ended on its own since the lease was created.","minimum":0},"upstreamRejectedTotal":{"type":"integer","format":"int64","description":"Handshakes the provider refused since the lease was created.","minimum":0},"heartbeatTime":{"type":"string","format":"date-time","description":"When the sidecar wrote this status."}}}}} as JSONSchema },
} as const;
