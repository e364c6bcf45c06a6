// One API request as a client makes it: bearer token, JSON body when there is one.

/** Calls `route` on the server at `base` and returns the status with the JSON answer. */
export async function callApi(base: string, method: string, route: string, token: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}
