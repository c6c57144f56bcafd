/** The dashboard page (GET / on the control port). Everything dynamic is built by app.js. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kmslab — KMS host dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<a class="skip" href="#pools">Skip to the count pools</a>
<header class="top">
  <h1>kmslab <span class="sub">KMS host lab emulator</span></h1>
  <dl class="facts">
    <div><dt>Host time</dt><dd id="host-time">loading…</dd></div>
    <div><dt>Clock</dt><dd id="clock-kind">…</dd></div>
    <div><dt>Requests answered</dt><dd id="requests-total">…</dd></div>
    <div><dt>Hardware id</dt><dd id="hwid">…</dd></div>
  </dl>
  <p id="connection" class="connection" role="alert"></p>
  <form id="login" class="login" hidden>
    <label for="token">This host's control API needs its token (<code>--control-token</code>):</label>
    <input id="token" name="token" type="password" autocomplete="current-password" required>
    <button type="submit">Sign in</button>
    <span id="login-why" class="note"></span>
  </form>
</header>
<main>
  <section class="controls" aria-labelledby="controls-heading">
    <h2 id="controls-heading">Clock and reset</h2>
    <div class="buttons" role="group" aria-label="Advance the host's manual clock">
      <button type="button" data-advance="hours:1">+1 hour</button>
      <button type="button" data-advance="days:1">+1 day</button>
      <button type="button" data-advance="days:7">+7 days</button>
      <button type="button" data-advance="days:31" class="strong">Advance 31 days</button>
    </div>
    <div class="buttons">
      <button type="button" id="reset" class="danger">Reset pools and history</button>
    </div>
    <p id="clock-note" class="note" hidden>This host runs on the system clock: start it with <code>--clock manual</code> to move time from here.</p>
    <p id="action-status" class="action-status" role="status" aria-live="polite"></p>
  </section>
  <div id="pools" class="pools" tabindex="-1"></div>
  <section class="counters" aria-labelledby="counters-heading">
    <h2 id="counters-heading">Cumulative requests received from clients</h2>
    <p class="note">What <code>slmgr /dlv</code> prints on a genuine host (WMI SoftwareLicensingService); kept in the store, they survive restarts and pool resets.</p>
    <dl id="request-counters" class="facts"></dl>
  </section>
  <section class="events" aria-labelledby="events-heading">
    <h2 id="events-heading">Live events</h2>
    <p class="note">Each activation request the host answered, newest first (at most 100 shown).</p>
    <ol id="events" class="event-list" role="log" aria-live="polite" aria-relevant="additions" aria-labelledby="events-heading"></ol>
  </section>
</main>
<noscript><p>This dashboard needs JavaScript. The same data is at <a href="/status">/status</a>, <a href="/clients">/clients</a>, <a href="/history">/history</a> and <a href="/metrics">/metrics</a>.</p></noscript>
<footer class="foot"><p>A lab emulator for testing KMS clients: it activates nothing. Data: <a href="/status">/status</a> · <a href="/clients">/clients</a> · <a href="/history">/history</a> · <a href="/metrics">/metrics</a></p></footer>
</body>
</html>
`;
