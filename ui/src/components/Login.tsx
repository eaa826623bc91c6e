import { useState } from 'preact/hooks';
import { api } from '../api';
import { setState } from '../store';

export function Login() {
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const r = await api<{ user: string }>('POST', '/auth/login', { username: 'root', password });
      setState({ user: r.user });
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="login">
      <form class="login-box" onSubmit={submit}>
        <h1>NeuroFlow</h1>
        <label>
          User
          <input name="username" value="root" disabled />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
        </label>
        {error && (
          <div class="form-error" role="alert">
            {error}
          </div>
        )}
        <button class="primary" type="submit" disabled={busy || !password}>
          Log in
        </button>
        <p class="hint">The root password is in DATA_DIR/root.password.</p>
      </form>
    </div>
  );
}
