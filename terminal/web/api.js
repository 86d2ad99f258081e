// The local API client (docs/architecture.md §5.3): JSON in and out, errors as ApiError.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || code);
    this.status = status; // 0 when the daemon could not be reached
    this.code = code;
    this.serverMessage = message || "";
    this.details = details || {};
  }

  get isNetwork() {
    return this.status === 0;
  }
}

const BASE = "/api/v1";

export async function request(method, path, body, { timeoutMs = 10000 } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    signal: AbortSignal.timeout(timeoutMs),
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(BASE + path, init);
  } catch {
    throw new ApiError(0, "network", "");
  }
  let data = null;
  const text = await resp.text().catch(() => "");
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    const code = err.code || (resp.status >= 500 ? "internal" : "invalid_request");
    throw new ApiError(resp.status, code, err.message || "", err.details);
  }
  return { status: resp.status, data };
}

export const api = {
  session: () => request("GET", "/session"),
  cashiers: () => request("GET", "/cashiers"),
  login: (cashier, pin) => request("POST", "/session", { cashier, pin }),
  logout: () => request("DELETE", "/session"),
  health: () => request("GET", "/health"),
  resolve: (input) => request("POST", "/cards/resolve", { input }),
  quote: (sale) => request("POST", "/sales/quote", sale),
  sale: (sale) => request("POST", "/sales", sale),
  voidSale: (id, reason) => request("POST", `/sales/${encodeURIComponent(id)}/void`, { reason }),
  receipt: (seq) => request("GET", `/receipts/${seq}`),
  reprint: (seq) => request("POST", `/receipts/${seq}/reprint`),
  // `body` carries a manager's approval when a cashier closes the day (approval.js).
  dayClose: (body) => request("POST", "/day/close", body, { timeoutMs: 30000 }),
  ledger: (after, limit) => request("GET", `/ledger?after=${after}&limit=${limit}`),
  sync: () => request("POST", "/sync", undefined, { timeoutMs: 120000 }),
  demoCards: () => request("GET", "/demo/cards"),
  demoSwipe: (key) => request("POST", "/demo/swipe", { key }),
};
