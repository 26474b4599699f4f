// Baton dashboard: sends the API token (kept in this tab's sessionStorage)
// as an Authorization header, swaps pages in without a reload, refreshes
// the overview. Plain ES2020, no build step; the pages work without it
// when the server has no token.
"use strict";
(() => {
  const KEY = "baton.token";
  const store = {
    get: () => { try { return sessionStorage.getItem(KEY); } catch (_) { return null; } },
    set: (t) => { try { sessionStorage.setItem(KEY, t); } catch (_) { /* private mode */ } },
    forget: () => { try { sessionStorage.removeItem(KEY); } catch (_) { /* private mode */ } },
  };
  let timer = null;
  let busy = false;
  // Each load takes a number; an answer that arrives after a later load
  // started is dropped, so a slow refresh never undoes a click.
  let latest = 0;

  // Fetches `url` (with the token when one is stored) and swaps the title,
  // the nav and <main> of the answer into this page.
  async function load(url, opts = {}) {
    if (busy && opts.background) return;
    busy = true;
    const mine = ++latest;
    const token = store.get();
    const headers = {};
    if (token) headers.Authorization = "Bearer " + token;
    if (opts.body) headers["Content-Type"] = "application/x-www-form-urlencoded";
    try {
      const res = await fetch(url, {
        method: opts.method || "GET",
        headers,
        body: opts.body,
        credentials: "omit",
        cache: "no-store",
        redirect: "follow",
      });
      const text = await res.text();
      if (mine !== latest) return;
      if (res.status === 401) store.forget();
      const doc = new DOMParser().parseFromString(text, "text/html");
      const main = doc.querySelector("main");
      if (!main) { if (!opts.background) location.assign(url); return; }
      document.title = doc.title;
      const nav = doc.querySelector("nav");
      const oldNav = document.querySelector("nav");
      if (nav && oldNav) oldNav.replaceWith(document.importNode(nav, true));
      const oldMain = document.querySelector("main");
      if (oldMain) oldMain.replaceWith(document.importNode(main, true));
      const target = res.url || url;
      if (opts.push) history.pushState({}, "", target);
      else if (target !== location.href) history.replaceState({}, "", target);
      if (!opts.background) window.scrollTo(0, 0);
      settle();
    } catch (e) {
      if (!opts.background) {
        const main = document.querySelector("main");
        if (main) {
          const p = document.createElement("p");
          p.className = "error";
          p.textContent = "The server did not answer: " + e;
          main.prepend(p);
        }
      }
    } finally {
      busy = false;
    }
  }

  // After a page is in place: ask for the token on the locked page, and
  // keep the refresh timer in step with the page's data-refresh.
  function settle() {
    const main = document.querySelector("main");
    if (timer) { clearInterval(timer); timer = null; }
    if (!main) return;
    if (main.hasAttribute("data-locked")) {
      const input = document.getElementById("token");
      if (input) input.focus();
      return;
    }
    const every = parseInt(main.getAttribute("data-refresh") || "0", 10);
    if (every > 0) {
      timer = setInterval(() => {
        const a = document.activeElement;
        const typing = a && a !== document.body && a.matches("input, select, textarea, button");
        if (document.visibilityState === "visible" && !typing) {
          load(location.href, { background: true });
        }
      }, every * 1000);
    }
  }

  function sameOriginUi(url) {
    return url.origin === location.origin && (url.pathname === "/ui" || url.pathname.startsWith("/ui/"));
  }

  document.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const forget = ev.target.closest("#forget-token");
    if (forget) {
      ev.preventDefault();
      store.forget();
      location.assign("/ui");
      return;
    }
    if (!store.get()) return;
    const a = ev.target.closest("a[href]");
    if (!a || a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, location.href);
    if (!sameOriginUi(url) || url.pathname.startsWith("/ui/assets/")) return;
    ev.preventDefault();
    load(url.href, { push: true });
  });

  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (form.id === "unlock") {
      ev.preventDefault();
      const input = form.querySelector("#token");
      const token = input ? input.value.trim() : "";
      if (input) input.value = "";
      if (!token) return;
      store.set(token);
      load(location.href);
      return;
    }
    if (!store.get()) return;
    const url = new URL(form.getAttribute("action") || location.href, location.href);
    if (!sameOriginUi(url)) return;
    ev.preventDefault();
    const params = new URLSearchParams(new FormData(form));
    if ((form.getAttribute("method") || "get").toLowerCase() === "post") {
      load(url.href, { method: "POST", body: params.toString(), push: true });
    } else {
      // Empty fields mean "any": leave them out of the address.
      const kept = new URLSearchParams();
      for (const [k, v] of params) if (v !== "") kept.append(k, v);
      url.search = kept.toString();
      load(url.href, { push: true });
    }
  });

  window.addEventListener("popstate", () => load(location.href));

  function start() {
    const main = document.querySelector("main");
    if (main && main.hasAttribute("data-locked") && store.get()) {
      load(location.href);
      return;
    }
    settle();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
