/** Signs in as the first admin (created from METAL_ADMIN_PASSWORD) and returns the request headers to use. */
export async function signInAsAdmin(apiBase: string, password: string): Promise<{ status: number; headers?: Record<string, string> }> {
  const login = await fetch(`${apiBase}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  });
  if (login.status !== 200) return { status: login.status };
  const { token } = (await login.json()) as { token: string };
  return { status: 200, headers: { authorization: `Bearer ${token}` } };
}
