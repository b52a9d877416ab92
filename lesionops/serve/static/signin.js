// Sign-in, shared by both pages: a personal access token (from `lesionops users add`) is checked
// with GET /auth/me, remembered on this device, and the signed-in user's name and role are shown
// with a way to sign out. Every API call then carries the token (api.js).
import * as api from "./api.js";

const $ = (id) => document.getElementById(id);

export class Account {
  /** `onChange(user | null)` runs after every sign-in, sign-out and check of a remembered token. */
  constructor(onChange) {
    this.user = null;
    this.onChange = onChange;
    $("signin").addEventListener("submit", (e) => {
      e.preventDefault();
      this.signIn($("token").value);
    });
    $("sign-out").addEventListener("click", () => this.signOut());
  }

  can(permission) {
    return Boolean(this.user?.permissions?.includes(permission));
  }

  /** Check a token remembered from an earlier visit (none: show the sign-in form). */
  async restore() {
    if (api.getToken()) await this.check();
    else this.show();
  }

  async signIn(value) {
    if (!value.trim()) {
      api.say($("account-status"), "Enter your personal access token.", "error");
      $("token").focus();
      return;
    }
    api.setToken(value);
    await this.check();
    if (this.user) $("token").value = "";
  }

  async check() {
    try {
      this.user = await api.me();
      api.say($("account-status"), "");
    } catch (err) {
      this.user = null;
      if (err.status === 401) api.setToken(""); // a refused token is not kept
      api.say($("account-status"), err.message, "error");
    }
    this.show();
  }

  signOut() {
    api.setToken("");
    this.user = null;
    api.say($("account-status"), "Signed out.", "ok");
    this.show();
  }

  show() {
    const user = this.user;
    $("signin").hidden = Boolean(user);
    $("signed-in").hidden = !user;
    $("who").textContent = user ? user.name : "";
    $("role").textContent = user ? `(${user.role})` : "";
    this.onChange(user);
  }
}
