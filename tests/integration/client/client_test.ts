// The reference client: types generated from host/http/openapi.yaml by
// openapi-typescript, calls made by openapi-fetch. Type-checked by tsc
// (strict) against the generated schema, then run against a live host by
// tests/integration/test_generated_client.py: create a payment with
// manual capture and metadata, capture it, refund part of it, page the
// refunds. Exits non-zero on the first surprise.
import createClient from "openapi-fetch";
import type { paths, components } from "./schema";

type Payment = components["schemas"]["Payment"];

// The little of Node this needs (no @types/node to install).
declare const process: { env: Record<string, string | undefined>; exit(code: number): never };
declare const console: { log(...a: unknown[]): void; error(...a: unknown[]): void };
declare function setTimeout(f: () => void, ms: number): unknown;

const baseUrl = process.env.PAGOFLEX_URL as string;
const apiKey = process.env.PAGOFLEX_API_KEY as string;
const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${apiKey}` } });

function check(ok: boolean, what: string, detail?: unknown): void {
  if (!ok) {
    console.error(`FAIL: ${what}`, JSON.stringify(detail));
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

async function waitFor(id: string, status: Payment["status"]): Promise<Payment> {
  for (let i = 0; i < 200; i++) {
    const { data } = await client.GET("/v1/payments/{id}", { params: { path: { id } } });
    if (data && data.status === status) return data;
    await new Promise<void>((r) => setTimeout(() => r(), 50));
  }
  check(false, `payment ${id} reaches ${status}`);
  throw new Error("unreachable");
}

async function main(): Promise<void> {
  const created = await client.POST("/v1/payments", {
    body: { amount: 2500, currency: "ARS", connector: "BANCO_X", capture_method: "manual",
            reference: "generated-client", metadata: { order: "A-17" } },
    params: { header: { "Idempotency-Key": `client-${Date.now()}` } },
  });
  check(created.response.status === 201 && created.data !== undefined, "create answers 201", created.error);
  const payment = created.data as Payment;
  check(payment.metadata?.order === "A-17", "metadata comes back", payment);

  const held = await waitFor(payment.id, "requires_capture");
  check(held.amount_capturable === 2500, "authorized in full", held);

  const captured = await client.POST("/v1/payments/{id}/capture", {
    params: { path: { id: payment.id } },
    body: { amount_to_capture: 2000 },
  });
  check(captured.response.status === 200 || captured.response.status === 202, "capture accepted", captured.error);
  const settled = await waitFor(payment.id, "succeeded");
  check(settled.amount_received === 2000, "captured 2000", settled);

  const refund = await client.POST("/v1/refunds", {
    body: { payment_id: payment.id, amount: 500, reason: "one item returned" },
  });
  check(refund.response.status === 201 && refund.data?.amount === 500, "refund of 500 made", refund.error);

  const listed = await client.GET("/v1/refunds", { params: { query: { payment_id: payment.id, limit: 10 } } });
  check(listed.data?.data.length === 1 && listed.data.data[0].id === refund.data?.id && !listed.data.has_more,
        "the refund is listed", listed.data);

  const bad = await client.POST("/v1/refunds", {
    // Not a RefundCreate (the document has no such member): the host refuses it by name.
    body: { payment_id: payment.id, colour: "red" } as unknown as components["schemas"]["RefundCreate"],
  });
  check(bad.response.status === 400 && bad.error?.error.code === "unknown_parameter" &&
        bad.error.error.field === "colour", "an unknown member is refused by name", bad.error);
}

main().catch((e) => {
  console.error("FAIL:", e);
  process.exit(1);
});
