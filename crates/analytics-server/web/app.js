// The dashboard: reads the public API under /api/analytics (never anything else),
// with the `read` key the user gives it, kept in this browser and sent only as a
// bearer header. Numbers are formatted as the case study formats them (SPEC §6).
'use strict';

(function () {
  const KEY_STORAGE = 'analytics.readKey';
  const LANG_STORAGE = 'analytics.lang';
  const REFRESH_MS = 5000;
  const NO_DATA = '本月暂无数据。';

  const TEXT = {
    zh: {
      title: '客服数据看板', now: '实时', trends: '趋势', month: '月度案例',
      agents: '坐席', tickets: '工单', pickMonth: '月份',
      customersToday: '今日服务客户', aiResolutionRate: 'AI 解决率',
      aiResponseTime: 'AI 平均响应', escalations: '转人工会话', onlineAgents: '在线坐席',
      activeSessions: '进行中会话', ticketsResolved: '已解决工单', slaMet: 'SLA 达标率',
      last24h: '最近 24 小时', last7: '近 7 天', last30: '近 30 天', last90: '近 90 天',
      thisMonth: '本月', lastMonth: '上月',
      chartCustomers: '服务客户与 AI 解决占比', chartResponse: 'AI 平均响应时间',
      chartAgents: '坐席首次响应与处理时长', chartTickets: '工单解决数与 SLA 达标率',
      caseCustomers: '服务客户', costSaved: '节省成本', sessionsHandled: '人工处理会话',
      firstResponse: '平均\u200b首次响应', handleTime: '平均\u200b处理时长',
      resolutionTime: '平均解决时长', ticketsCreated: '新建工单',
      copyStory: '复制案例文字', viewJson: '查看 JSON', copied: '已复制。',
      copyFailed: '无法复制，请手动选择文字。',
      agentId: '坐席', sessions: '会话', messages: '消息', transfers: '转接',
      keyTitle: '需要访问密钥',
      keyHelp: '此服务配置了 API 密钥。请输入一个具有 read 权限的密钥；它只保存在本浏览器中，并仅以 Bearer 头发送。',
      keyLabel: 'read 密钥', keySubmit: '确定', forgetKey: '更换密钥',
      keyRefused: '密钥无效：服务拒绝了它（401）。请检查后重新输入。',
      keyNoScope: '该密钥没有 read 权限（403）。请使用 read 或 admin 密钥。',
      networkError: '无法连接服务。',
      updated: '更新于 {time}', range: '{start} 至 {end}', spread: '中位数\u00a0{p50} · P90\u00a0{p90}',
      rangeEmpty: '所选时间段暂无数据。', noData: NO_DATA,
      footer: '数据来自本服务的 API（/api/analytics）。',
      events: '事件', sessionsStarted: '新会话', customers: '服务客户',
      aiShare: 'AI 解决占比', responseSeconds: 'AI 平均响应（秒）',
      firstResponseSeconds: '首次响应（秒）', handleMinutes: '处理时长（分钟）',
      slaRate: 'SLA 达标率', apiError: '接口错误：{message}',
      funnel: 'AI 漏斗', funnelSessions: '会话', funnelAiHandled: 'AI 独立处理',
      funnelReturned: '{hours} 小时内再次咨询', funnelDurableRate: '持久 AI 解决率',
      funnelReturnRate: '回访率', funnelNoCustomer: '无客户标识占比',
      funnelCost: '持久解决节省成本',
      provisional: '暂定：本月最后一天后 {hours} 小时内的回访仍可能改变这些数字。',
    },
    en: {
      title: 'Customer service dashboard', now: 'Now', trends: 'Trends',
      month: 'The month', agents: 'Agents', tickets: 'Tickets', pickMonth: 'Month',
      customersToday: 'Customers served today', aiResolutionRate: 'AI resolution rate',
      aiResponseTime: 'AI response time', escalations: 'Handed to agents',
      onlineAgents: 'Agents online', activeSessions: 'Active sessions',
      ticketsResolved: 'Tickets resolved', slaMet: 'SLA met',
      last24h: 'Last 24 hours', last7: 'Last 7 days', last30: 'Last 30 days',
      last90: 'Last 90 days', thisMonth: 'This month', lastMonth: 'Last month',
      chartCustomers: 'Customers served and AI-resolved share',
      chartResponse: 'AI response time',
      chartAgents: 'Agents: first response and handle time',
      chartTickets: 'Tickets resolved and SLA rate',
      caseCustomers: 'Customers served', costSaved: 'Cost saved',
      sessionsHandled: 'Sessions handled by agents', firstResponse: 'First response',
      handleTime: 'Handle time', resolutionTime: 'Resolution time',
      ticketsCreated: 'Tickets created', copyStory: 'Copy the story',
      viewJson: 'View JSON', copied: 'Copied.',
      copyFailed: 'Could not copy; select the text by hand.',
      agentId: 'Agent', sessions: 'Sessions', messages: 'Messages', transfers: 'Transfers',
      keyTitle: 'An access key is needed',
      keyHelp: 'This service has API keys. Enter a key with the read scope; it is kept in this browser only and sent only as a bearer header.',
      keyLabel: 'read key', keySubmit: 'OK', forgetKey: 'Change key',
      keyRefused: 'The key was refused (401). Check it and enter it again.',
      keyNoScope: 'This key has no read scope (403). Use a read or admin key.',
      networkError: 'The service cannot be reached.',
      updated: 'updated {time}', range: '{start} to {end}', spread: 'median\u00a0{p50} · p90\u00a0{p90}',
      rangeEmpty: 'No data in the chosen range.', noData: 'No data this month.',
      footer: 'Data from this service\u2019s API (/api/analytics).',
      events: 'Events', sessionsStarted: 'Sessions started', customers: 'Customers served',
      aiShare: 'AI-resolved share', responseSeconds: 'AI response (s)',
      firstResponseSeconds: 'First response (s)', handleMinutes: 'Handle time (min)',
      slaRate: 'SLA rate', apiError: 'API error: {message}',
      funnel: 'AI funnel', funnelSessions: 'Sessions', funnelAiHandled: 'Handled by the AI alone',
      funnelReturned: 'Came back within {hours} h', funnelDurableRate: 'Durable AI resolution rate',
      funnelReturnRate: 'Return rate', funnelNoCustomer: 'Sessions without customer id',
      funnelCost: 'Saved by durable resolutions',
      provisional: 'Provisional: returns within {hours} hours of the month\u2019s last day can still change these figures.',
    },
  };

  const state = {
    key: localStorage.getItem(KEY_STORAGE) || '',
    lang: localStorage.getItem(LANG_STORAGE) === 'en' ? 'en' : 'zh',
    today: null,
    realtime: null,
    preset: '30',
    range: null,
    caseStudy: null,
    agents: [],
    sort: { key: 'sessions_handled', dir: 'desc' },
    tickets: null,
    funnel: null,
    charts: {},
    timer: null,
    ready: false,
  };

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  function t(key, vars) {
    let text = (TEXT[state.lang] && TEXT[state.lang][key]) || TEXT.zh[key] || key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  // ---- Formatting, as analytics_core::case_study::format does it ------------------

  // Rust's `{:.1}`: the exact value rounded to one decimal, ties to even.
  function fixed1(x) {
    if (Number.isInteger(x * 4) && !Number.isInteger(x * 2)) {
      // x ends in .25 or .75 exactly: a tie at one decimal.
      const scaled = x * 10;
      const floor = Math.floor(scaled);
      const even = floor % 2 === 0 ? floor : floor + 1;
      return (even / 10).toFixed(1);
    }
    return x.toFixed(1);
  }
  function oneDecimal(x) {
    const s = fixed1(x);
    return s.endsWith('.0') ? s.slice(0, -2) : s;
  }
  function count(n) {
    if (n === null || n === undefined) return '—';
    const digits = String(Math.trunc(n));
    let out = '';
    for (let i = 0; i < digits.length; i++) {
      if (i > 0 && (digits.length - i) % 3 === 0) out += ',';
      out += digits[i];
    }
    return out;
  }
  function rate(fraction) {
    return fraction === null || fraction === undefined ? '—' : fixed1(fraction * 100) + '%';
  }
  function money(yuan) {
    return '¥' + count(Math.round(Math.max(0, yuan)));
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    if (seconds < 60) return oneDecimal(seconds) + '秒';
    if (seconds < 3600) return oneDecimal(seconds / 60) + '分钟';
    return oneDecimal(seconds / 3600) + '小时';
  }
  const orDash = (value) => (value === null || value === undefined ? '—' : value);

  // ---- Dates: business dates as YYYY-MM-DD strings, computed in UTC ----------------

  function parseDate(s) {
    const [y, m, d] = s.split('-').map(Number);
    return new Date(Date.UTC(y, m - 1, d));
  }
  function formatDate(date) {
    return date.toISOString().slice(0, 10);
  }
  function addDays(s, n) {
    const date = parseDate(s);
    date.setUTCDate(date.getUTCDate() + n);
    return formatDate(date);
  }
  function monthStart(s) {
    return s.slice(0, 8) + '01';
  }
  function monthEnd(month) {
    const [y, m] = month.split('-').map(Number);
    return formatDate(new Date(Date.UTC(y, m, 0)));
  }
  function previousMonth(month) {
    const [y, m] = month.split('-').map(Number);
    return formatDate(new Date(Date.UTC(y, m - 2, 1))).slice(0, 7);
  }

  // ---- The API ----------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function api(path) {
    const headers = { Accept: 'application/json' };
    if (state.key) headers.Authorization = 'Bearer ' + state.key;
    let response;
    try {
      response = await fetch('/api/analytics' + path, { headers, cache: 'no-store' });
    } catch (error) {
      throw new ApiError(t('networkError'), 0);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error && body.error.message
        ? body.error.message
        : response.status + ' ' + response.statusText;
      throw new ApiError(message, response.status);
    }
    return body;
  }

  const isAuth = (error) => error instanceof ApiError && (error.status === 401 || error.status === 403);

  // ---- Messages -----------------------------------------------------------------------

  function showBanner(message) {
    const banner = $('#error-banner');
    banner.textContent = message;
    banner.hidden = !message;
  }
  function sectionError(section, error) {
    const p = $('.section-error', $(section));
    if (!error) {
      p.hidden = true;
      p.textContent = '';
      return;
    }
    p.textContent = t('apiError', { message: error.message });
    p.hidden = false;
  }

  // ---- Charts -------------------------------------------------------------------------

  function chart(id) {
    if (!state.charts[id]) {
      state.charts[id] = echarts.init(document.getElementById(id), null, { renderer: 'canvas' });
    }
    return state.charts[id];
  }

  function baseOption() {
    return {
      animationDuration: 300,
      grid: { left: 48, right: 48, top: 36, bottom: 28 },
      // Drawn on the canvas, not as HTML: nothing for the CSP to refuse.
      tooltip: { trigger: 'axis', renderMode: 'richText' },
      legend: { top: 0, textStyle: { fontSize: 11 } },
    };
  }

  function percentAxis() {
    return { type: 'value', min: 0, max: 100, axisLabel: { formatter: '{value}%' }, splitLine: { show: false } };
  }

  const maybe = (value, f) => (value === null || value === undefined ? null : f(value));

  function drawHours(hours) {
    const option = baseOption();
    option.xAxis = { type: 'category', data: hours.map((h) => String(h.hour).padStart(2, '0') + ':00') };
    option.yAxis = { type: 'value', minInterval: 1 };
    option.series = [
      { name: t('events'), type: 'bar', data: hours.map((h) => h.events), tooltip: { valueFormatter: count } },
      { name: t('sessionsStarted'), type: 'line', data: hours.map((h) => h.sessions_started), tooltip: { valueFormatter: count } },
    ];
    chart('chart-hours').setOption(option, true);
  }

  function drawTrends(days) {
    const dates = days.map((d) => d.date);
    const labels = dates.map((d) => d.slice(5));
    const raw = days.map((d) => d.raw);
    const dayAxis = { type: 'category', data: labels };
    const tooltip = (formatter) => ({ valueFormatter: (v) => (v === null || v === undefined || v === '-' ? '—' : formatter(v)) });

    const customers = baseOption();
    customers.xAxis = dayAxis;
    customers.yAxis = [{ type: 'value', minInterval: 1 }, percentAxis()];
    customers.series = [
      { name: t('customers'), type: 'bar', data: raw.map((r) => r.total_customers_served), tooltip: tooltip(count) },
      { name: t('aiShare'), type: 'line', yAxisIndex: 1, data: raw.map((r) => maybe(r.ai_resolution_rate, (v) => v * 100)), tooltip: tooltip((v) => fixed1(v) + '%') },
    ];
    chart('chart-customers').setOption(customers, true);

    const response = baseOption();
    response.xAxis = dayAxis;
    response.yAxis = { type: 'value', name: 's' };
    response.series = [
      { name: t('responseSeconds'), type: 'line', data: raw.map((r) => maybe(r.avg_response_time_ms, (v) => v / 1000)), tooltip: tooltip(duration) },
    ];
    chart('chart-response').setOption(response, true);

    const agents = baseOption();
    agents.xAxis = dayAxis;
    agents.yAxis = [{ type: 'value', name: 's' }, { type: 'value', name: 'min', splitLine: { show: false } }];
    agents.series = [
      { name: t('firstResponseSeconds'), type: 'line', data: raw.map((r) => r.avg_first_response_seconds), tooltip: tooltip(duration) },
      { name: t('handleMinutes'), type: 'line', yAxisIndex: 1, data: raw.map((r) => maybe(r.avg_handle_time_seconds, (v) => v / 60)), tooltip: tooltip((v) => duration(v * 60)) },
    ];
    chart('chart-agents').setOption(agents, true);

    const tickets = baseOption();
    tickets.xAxis = dayAxis;
    tickets.yAxis = [{ type: 'value', minInterval: 1 }, percentAxis()];
    tickets.series = [
      { name: t('ticketsResolved'), type: 'bar', data: raw.map((r) => r.tickets_resolved), tooltip: tooltip(count) },
      { name: t('slaRate'), type: 'line', yAxisIndex: 1, data: raw.map((r) => maybe(r.sla_met_rate, (v) => v * 100)), tooltip: tooltip((v) => fixed1(v) + '%') },
    ];
    chart('chart-tickets').setOption(tickets, true);

    const empty = raw.every((r) => !r.total_customers_served && !r.sessions_handled && !r.tickets_resolved);
    const note = $('#trends-empty');
    note.textContent = t('rangeEmpty');
    note.hidden = !empty;
  }

  // ---- Sections -----------------------------------------------------------------------

  function renderNow(realtime) {
    const today = realtime.today;
    const values = {
      total_customers_served: count(today.total_customers_served),
      ai_resolution_rate: rate(today.ai_resolution_rate),
      avg_response_time: maybe(today.avg_response_time_ms, (ms) => duration(ms / 1000)) || '—',
      escalations: count(today.escalations),
      online_agents: count(realtime.online_agents),
      active_sessions: count(realtime.active_sessions),
      tickets_resolved: count(today.tickets_resolved),
      sla_met_rate: rate(today.sla_met_rate),
    };
    for (const tile of $$('#now-tiles .tile')) {
      $('.value', tile).textContent = values[tile.dataset.metric];
    }
    const time = new Date(realtime.as_of).toLocaleTimeString(state.lang === 'en' ? 'en-GB' : 'zh-CN');
    $('#now-updated').textContent = t('updated', { time });
    drawHours(realtime.last_24_hours);
  }

  function presetRange(preset) {
    const today = state.today;
    switch (preset) {
      case '7': return [addDays(today, -6), today];
      case '90': return [addDays(today, -89), today];
      case 'this-month': return [monthStart(today), today];
      case 'last-month': {
        const month = previousMonth(today.slice(0, 7));
        return [month + '-01', monthEnd(month)];
      }
      default: return [addDays(today, -29), today];
    }
  }

  async function loadTrends() {
    const [start, end] = presetRange(state.preset);
    for (const button of $$('.presets button')) {
      button.classList.toggle('active', button.dataset.preset === state.preset);
    }
    try {
      const range = await api('/range?start=' + start + '&end=' + end);
      state.range = range;
      $('#trends-range').textContent = t('range', { start, end });
      drawTrends(range.days);
      sectionError('#trends', null);
    } catch (error) {
      if (isAuth(error)) throw error;
      sectionError('#trends', error);
    }
  }

  function renderCaseStudy(study) {
    $('#case-period').textContent = study.period;
    const value = (path) => path.split('.').reduce((o, k) => (o ? o[k] : null), study);
    for (const tile of $$('#case-tiles .tile')) {
      const v = value(tile.dataset.case);
      $('.value', tile).textContent = typeof v === 'number' ? count(v) : orDash(v);
      // Beside a mean, its median and 90th percentile (in seconds as the mean is told).
      if (tile.dataset.spread) {
        const scale = Number(tile.dataset.scale);
        const p50 = study.raw[tile.dataset.spread + '_p50'];
        const p90 = study.raw[tile.dataset.spread + '_p90'];
        $('.spread', tile).textContent = p50 === null || p50 === undefined || p90 === null || p90 === undefined
          ? ''
          : t('spread', { p50: duration(p50 * scale), p90: duration(p90 * scale) });
      }
    }
    $('#story').textContent = study.story;
  }

  function renderAgents() {
    const { key, dir } = state.sort;
    const sign = dir === 'asc' ? 1 : -1;
    const rows = state.agents.slice().sort((a, b) => {
      const x = a[key];
      const y = b[key];
      if (x === y) return a.agent_id < b.agent_id ? -1 : a.agent_id > b.agent_id ? 1 : 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sign;
    });
    for (const th of $$('#agents-table th')) {
      th.classList.toggle('sorted-asc', th.dataset.sort === key && dir === 'asc');
      th.classList.toggle('sorted-desc', th.dataset.sort === key && dir === 'desc');
    }
    const body = $('#agents-table tbody');
    body.textContent = '';
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = 6;
      td.className = 'empty';
      td.textContent = t('noData');
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    const most = Math.max(1, ...rows.map((r) => r.sessions_handled));
    for (const row of rows) {
      const tr = document.createElement('tr');
      tr.dataset.agent = row.agent_id;
      const cell = (text, numeric) => {
        const td = document.createElement('td');
        if (numeric) td.className = 'num';
        td.textContent = text;
        tr.appendChild(td);
        return td;
      };
      cell(row.agent_id, false);
      const sessions = cell('', true);
      const wrap = document.createElement('span');
      wrap.className = 'bar-cell';
      const track = document.createElement('span');
      track.className = 'bar-track';
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = Math.round((row.sessions_handled / most) * 100) + '%';
      track.appendChild(bar);
      const number = document.createElement('span');
      number.textContent = count(row.sessions_handled);
      wrap.append(track, number);
      sessions.appendChild(wrap);
      cell(duration(row.avg_first_response_seconds), true);
      cell(duration(row.avg_handle_time_seconds), true);
      cell(count(row.messages), true);
      cell(count(row.transfers), true);
      body.appendChild(tr);
    }
  }

  function renderTickets(tickets) {
    const values = {
      tickets_created: count(tickets.tickets_created),
      tickets_resolved: count(tickets.tickets_resolved),
      avg_resolution_time_hours: maybe(tickets.avg_resolution_time_hours, (h) => duration(h * 3600)) || '—',
      sla_met_rate: rate(tickets.sla_met_rate),
    };
    for (const tile of $$('#ticket-tiles .tile')) {
      $('.value', tile).textContent = values[tile.dataset.ticket];
    }
    const note = $('#tickets-empty');
    note.textContent = t('noData');
    note.hidden = tickets.tickets_created > 0 || tickets.tickets_resolved > 0;
  }

  function renderFunnel(funnel) {
    const values = {
      sessions: count(funnel.sessions),
      ai_handled: count(funnel.ai_handled),
      returned: count(funnel.returned),
      durable_ai_resolution_rate: rate(funnel.durable_ai_resolution_rate),
      return_rate: rate(funnel.return_rate),
      without_customer_share: rate(funnel.without_customer_share),
      cost_saved_durable_yuan: money(funnel.cost_saved_durable_yuan),
    };
    for (const tile of $$('#funnel-tiles .tile')) {
      $('.value', tile).textContent = values[tile.dataset.funnel];
    }
    const hours = String(funnel.return_window_hours);
    $('#funnel-tiles [data-funnel=returned] .label').textContent = t('funnelReturned', { hours });
    const note = $('#funnel-provisional');
    note.textContent = t('provisional', { hours });
    note.hidden = !funnel.provisional;
  }

  async function loadMonth() {
    const month = $('#month-input').value || state.today.slice(0, 7);
    for (const label of $$('.month-label')) label.textContent = month;
    $('#case-json').href = '/api/analytics/case-study?month=' + month;
    const results = await Promise.allSettled([
      api('/case-study?month=' + month),
      api('/agents?month=' + month),
      api('/tickets?month=' + month),
      api('/ai?month=' + month),
    ]);
    const auth = results.find((r) => r.status === 'rejected' && isAuth(r.reason));
    if (auth) throw auth.reason;
    const [study, agents, tickets, funnel] = results;
    if (funnel.status === 'fulfilled') {
      state.funnel = funnel.value;
      renderFunnel(funnel.value);
      sectionError('#funnel', null);
    } else {
      sectionError('#funnel', funnel.reason);
    }
    if (study.status === 'fulfilled') {
      state.caseStudy = study.value;
      renderCaseStudy(study.value);
      sectionError('#month', null);
    } else {
      sectionError('#month', study.reason);
    }
    if (agents.status === 'fulfilled') {
      state.agents = agents.value.agents;
      renderAgents();
      sectionError('#agents', null);
    } else {
      sectionError('#agents', agents.reason);
    }
    if (tickets.status === 'fulfilled') {
      state.tickets = tickets.value;
      renderTickets(tickets.value);
      sectionError('#tickets', null);
    } else {
      sectionError('#tickets', tickets.reason);
    }
  }

  // ---- Flow ---------------------------------------------------------------------------

  function showKeyPanel(error) {
    $('#content').hidden = true;
    $('#key-panel').hidden = false;
    $('#forget-key').hidden = true;
    let message = '';
    if (error && state.key) message = error.status === 403 ? t('keyNoScope') : t('keyRefused');
    $('#key-error').textContent = message;
    $('#key-input').focus();
  }

  async function refreshNow() {
    try {
      const realtime = await api('/realtime');
      state.realtime = realtime;
      // After midnight the presets and the month picker follow the new day.
      state.today = realtime.date;
      $('#month-input').max = realtime.date.slice(0, 7);
      renderNow(realtime);
      sectionError('#now', null);
      showBanner('');
    } catch (error) {
      if (isAuth(error)) {
        stop();
        showKeyPanel(error);
      } else {
        showBanner(t('apiError', { message: error.message }));
      }
    }
  }

  function stop() {
    if (state.timer) {
      clearInterval(state.timer);
      clearTimeout(state.timer);
    }
    state.timer = null;
  }

  async function boot() {
    stop();
    try {
      const realtime = await api('/realtime');
      state.realtime = realtime;
      state.today = realtime.date;
      $('#key-panel').hidden = true;
      $('#content').hidden = false;
      $('#forget-key').hidden = !state.key;
      showBanner('');
      if (!$('#month-input').value) $('#month-input').value = realtime.date.slice(0, 7);
      $('#month-input').max = realtime.date.slice(0, 7);
      renderNow(realtime);
      await Promise.all([loadTrends(), loadMonth()]);
      resizeCharts();
      if (!state.ready) {
        state.ready = true;
        document.documentElement.dataset.readyMs = String(Math.round(performance.now()));
        document.documentElement.dataset.ready = '1';
      }
      state.timer = setInterval(refreshNow, REFRESH_MS);
    } catch (error) {
      if (isAuth(error)) {
        showKeyPanel(error);
      } else {
        // The service did not answer: say so, and try again.
        showBanner(t('apiError', { message: error.message }));
        state.timer = setTimeout(boot, REFRESH_MS);
      }
    }
  }

  function resizeCharts() {
    for (const instance of Object.values(state.charts)) instance.resize();
  }

  function applyLang() {
    document.documentElement.lang = state.lang === 'en' ? 'en' : 'zh-CN';
    for (const el of $$('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    document.title = t('title');
    const toggle = $('#lang-toggle');
    toggle.textContent = state.lang === 'en' ? '中文' : 'English';
    toggle.lang = state.lang === 'en' ? 'zh-CN' : 'en';
    if (state.realtime) renderNow(state.realtime);
    if (state.range) {
      const [start, end] = [state.range.start, state.range.end];
      $('#trends-range').textContent = t('range', { start, end });
      drawTrends(state.range.days);
    }
    if (state.caseStudy) renderAgents();
    if (state.tickets) renderTickets(state.tickets);
    if (state.funnel) renderFunnel(state.funnel);
  }

  async function copyStory() {
    const story = $('#story').textContent;
    const status = $('#copy-status');
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(story);
      } else {
        const area = document.createElement('textarea');
        area.value = story;
        document.body.appendChild(area);
        area.select();
        const ok = document.execCommand('copy');
        area.remove();
        if (!ok) throw new Error('copy refused');
      }
      status.textContent = t('copied');
    } catch (error) {
      status.textContent = t('copyFailed');
    }
  }

  async function openJson(event) {
    if (!state.key) return; // The link works as it is.
    event.preventDefault();
    const month = $('#month-input').value;
    try {
      const study = await api('/case-study?month=' + month);
      const blob = new Blob([JSON.stringify(study, null, 2)], { type: 'application/json' });
      window.open(URL.createObjectURL(blob), '_blank', 'noopener');
    } catch (error) {
      sectionError('#month', error);
    }
  }

  function bind() {
    $('#key-form').addEventListener('submit', (event) => {
      event.preventDefault();
      state.key = $('#key-input').value.trim();
      localStorage.setItem(KEY_STORAGE, state.key);
      $('#key-input').value = '';
      boot();
    });
    $('#forget-key').addEventListener('click', () => {
      stop();
      state.key = '';
      localStorage.removeItem(KEY_STORAGE);
      showKeyPanel(null);
    });
    $('#lang-toggle').addEventListener('click', () => {
      state.lang = state.lang === 'en' ? 'zh' : 'en';
      localStorage.setItem(LANG_STORAGE, state.lang);
      applyLang();
    });
    for (const button of $$('.presets button')) {
      button.addEventListener('click', () => {
        state.preset = button.dataset.preset;
        loadTrends().catch((error) => showKeyPanel(error));
      });
    }
    $('#month-input').addEventListener('change', () => {
      if ($('#month-input').value) loadMonth().catch((error) => showKeyPanel(error));
    });
    for (const th of $$('#agents-table th')) {
      th.addEventListener('click', () => {
        const key = th.dataset.sort;
        if (state.sort.key === key) {
          state.sort.dir = state.sort.dir === 'asc' ? 'desc' : 'asc';
        } else {
          state.sort = { key, dir: key === 'agent_id' ? 'asc' : 'desc' };
        }
        renderAgents();
      });
    }
    $('#copy-story').addEventListener('click', copyStory);
    $('#case-json').addEventListener('click', openJson);
    window.addEventListener('resize', resizeCharts);
  }

  bind();
  applyLang();
  boot();
})();
