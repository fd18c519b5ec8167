// Labels the evaluation corpora of loadtest/bots.sh, one agent per line.
// Run by `config/bots/fetch.sh --eval`:
//
//   node label.js JS_YAML UAP_CORE_DIR FAKE_USERAGENT_JSONL DEVICE_DETECTOR_FIXTURES \
//     RANDOM_USERAGENT_JSON WOOTHEE_TESTSETS OUT_DIR
//
// The labels are the corpora's own, never our detector's:
// - uap-core: a bot is an agent uap-core calls a bot, that is its device family is "Spider"
//   (labelled in tests/test_device.yaml; for the other files, uap-core's own regexes.yaml
//   device parser gives the family), or its labelled browser family names a robot
//   (bot, crawl, spider, slurp). A browser is an agent whose uap-core browser family (the
//   file's label, or regexes.yaml's parser for tests/test_device.yaml, which labels devices)
//   is one of BROWSER_FAMILIES below: web browsers and in-app browsers, including feature-phone,
//   proxy and TV browsers. Everything else (HTTP libraries, mail clients, media players, apps,
//   bare device ids that name no browser) is neither and is written to *.other.txt, unscored.
//   pgts_browser_list.yaml, a large list of mostly 2000s desktop agents, is its own source.
// - fake-useragent: every agent of its data file is a real browser's.
// - device-detector (a training source): Matomo device-detector's test fixtures, as shipped by
//   PyPI device_detector. A bot is an agent of bots.yml; a browser is an agent whose labelled
//   client type is "browser", except the headless browsers (client names saying "headless"),
//   which are automation, and Android's Dalvik HTTP client, an app's agent; anything else
//   (mobile apps, libraries, media players, feed readers, mail clients, no client) is neither.
// - techpatterns (a training source): the user-agent switcher list of techpatterns.com as npm
//   random-useragent ships it, each agent in a folder: browsers are the folders of browsers
//   (desktop, legacy, console, OS/2, BeOS), mobile devices and game consoles; bots are spiders
//   and validators; downloaders, feed readers, libraries and the rest are neither.
// - woothee (a training source): the test sets of npm woothee, by their category: pc,
//   smartphone, mobilephone and appliance are browsers, crawler bots, the rest neither.
// A training agent that is also in a held-out set is left out of the training source, so that
// nothing held out is read or tuned on through it.
//
// The family list was written from uap-core's family names alone, before any of our results on
// these corpora were looked at; see config/bots/README.md.
'use strict';
const fs = require('fs');
const path = require('path');

const [yamlJs, uapDir, fakeJsonl, ddFixtures, randomUaJson, wootheeDir, outDir] = process.argv.slice(2);
if (!outDir) {
  throw new Error('usage: node label.js JS_YAML UAP_CORE_DIR FAKE_USERAGENT_JSONL DEVICE_DETECTOR_FIXTURES '
    + 'RANDOM_USERAGENT_JSON WOOTHEE_TESTSETS OUT_DIR');
}
const yaml = require(path.resolve(yamlJs));

const BROWSER_FAMILIES = new Set([
  // Desktop and mobile web browsers.
  'Amazon Silk', 'Android', 'AOL', 'Avant', 'Baidu Browser', 'Baidu Explorer', 'Basilisk', 'Bon Echo',
  'Brave', 'BrowseX', 'Camino', 'Chimera', 'Chrome', 'Chrome Frame', 'Chrome Mobile', 'Chrome Mobile iOS',
  'Chrome Mobile WebView', 'Chromium', 'Coc Coc', 'Comodo Dragon', 'Conkeror', 'Crazy Browser', 'Dillo',
  'Dolphin', 'Dragon', 'DuckDuckGo Mobile', 'Edge', 'Edge Mobile', 'ELinks', 'Epiphany', 'Firefox',
  'Firefox (Shiretoko)', 'Firefox Beta', 'Firefox iOS', 'Firefox Mobile', 'FireWeb', 'Galeon', 'IBrowse',
  'iBrowser', 'iBrowser Mini', 'iCab', 'IceCat', 'IE', 'IE Large Screen', 'IE Mobile', 'Iron', 'K-Meleon',
  'Konqueror', 'Links', 'LuaKit', 'Lunascape', 'Lynx', 'Mail.ru Chromium Browser', 'Maxthon', 'mDolphin',
  'Midori', 'Mint Browser', 'MiuiBrowser', 'Mobile Safari', 'MobileSafari', 'Mobile Safari UI/WKWebView',
  'MozillaDeveloperPreview', 'MyIE2', 'NCSA Mosaic', 'Netscape', 'Nutscrape', 'OmniWeb', 'Opera',
  'Opera Coast', 'Opera Mobile', 'Opera Neon', 'Opera Tablet', 'Otter', 'Pale Moon', 'Phoenix',
  'Phantom Browser', 'Puffin', 'QQ Browser', 'QQ Browser Mobile', 'QupZilla', 'qutebrowser', 'Rekonq',
  'RockMelt', 'Safari', 'Sailfish Browser', 'Samsung Internet', 'SeaMonkey', 'SerenityOS Browser',
  'Seznam prohlížeč', 'Shiira', 'SkipStone', 'Skyfire', 'Sleipnir', 'Snowshoe', 'Tenta Browser',
  'ThunderBrowse', 'Vivaldi', 'Waterfox', 'WebKit Nightly', 'Whale', 'Yandex Browser',
  // Feature-phone, proxy and embedded browsers.
  'BlackBerry', 'BlackBerry WebKit', 'Bunjalloo', 'Dolfin', 'Jasmine', 'NetFront', 'Netfront', 'NetFront NX',
  'Nokia', 'Nokia Browser', 'Nokia OSS Browser', 'Nokia Services (WAP) Browser', 'Obigo', 'ONE Browser',
  'Openwave', 'Opera Mini', 'Ovi Browser', 'Polaris', 'QQ Browser Mini', 'SEMC-Browser', 'Teleca Browser',
  'UC Browser', 'UP.Browser', 'webOS Browser', 'iRider', 'Minimo', 'Planetweb', 'ICE Browser', 'Kindle',
  'HbbTV', 'Espial', 'QtCarBrowser', 'WeTab',
  // In-app browsers (web views inside social and search apps).
  'Facebook', 'Facebook Messenger', 'Google', 'Instagram', 'LINE', 'Pinterest', 'Snapchat', 'Twitter',
]);
const ROBOT_FAMILY = /bot|crawl|spider|slurp/i;

const load = (f) => yaml.load(fs.readFileSync(path.join(uapDir, f), 'utf8')).test_cases;
const regexes = yaml.load(fs.readFileSync(path.join(uapDir, 'regexes.yaml'), 'utf8'));
const compile = (list) => list.map((p) => ({ ...p, re: new RegExp(p.regex, p.regex_flag === 'i' ? 'i' : '') }));
const deviceParsers = compile(regexes.device_parsers);
const uaParsers = compile(regexes.user_agent_parsers);
const fill = (template, m) => template.replace(/\$(\d)/g, (_, i) => m[+i] || '').trim();
function parse(parsers, key, ua) {
  for (const p of parsers) {
    const m = p.re.exec(ua);
    if (m) return p[key] ? fill(p[key], m) : m[1] || 'Other';
  }
  return 'Other';
}
const deviceFamily = (ua) => parse(deviceParsers, 'device_replacement', ua);
const browserFamily = (ua) => parse(uaParsers, 'family_replacement', ua);

const sets = {};
function add(source, label, ua) {
  ua = String(ua).trim();
  if (ua === '' || /[\r\n]/.test(ua)) return;
  const key = `${source}.${label}`;
  (sets[key] ||= new Set()).add(ua);
}

function labelUap(source, file, labelsDevice) {
  for (const c of load(file)) {
    const ua = c.user_agent_string;
    const device = labelsDevice ? c.family : deviceFamily(ua);
    const family = labelsDevice ? browserFamily(ua) : c.family;
    if (device === 'Spider' || ROBOT_FAMILY.test(family)) add(source, 'bots', ua);
    else if (BROWSER_FAMILIES.has(family)) add(source, 'browsers', ua);
    else add(source, 'other', ua);
  }
}
labelUap('uap-core', 'tests/test_ua.yaml', false);
labelUap('uap-core', 'tests/test_device.yaml', true);
labelUap('uap-core', 'test_resources/firefox_user_agent_strings.yaml', false);
labelUap('uap-core', 'test_resources/opera_mini_user_agent_strings.yaml', false);
labelUap('uap-core-pgts', 'test_resources/pgts_browser_list.yaml', false);

for (const line of fs.readFileSync(fakeJsonl, 'utf8').split('\n')) {
  if (line.trim() !== '') add('fake-useragent', 'browsers', JSON.parse(line).useragent);
}

// An agent labelled both ways within a source (the same string in two files) counts as a bot.
for (const source of ['uap-core', 'uap-core-pgts']) {
  for (const ua of sets[`${source}.bots`] || []) {
    sets[`${source}.browsers`]?.delete(ua);
    sets[`${source}.other`]?.delete(ua);
  }
  for (const ua of sets[`${source}.browsers`] || []) sets[`${source}.other`]?.delete(ua);
}

// device-detector: one YAML list per file; bots.yml holds the bots, the others devices with
// their client's type.
const HEADLESS = /headless/i;
// Android's runtime HTTP client, which device-detector reports as the platform's browser for want
// of one: an app's request, not a page view (clickgate flags it as non_browser_ua by design).
const DALVIK = /^(?:[\w.:]*:)?Dalvik\//;
for (const f of fs.readdirSync(ddFixtures).filter((f) => f.endsWith('.yml')).sort()) {
  for (const c of yaml.load(fs.readFileSync(path.join(ddFixtures, f), 'utf8')) || []) {
    const client = c.client || {};
    if (f === 'bots.yml') add('device-detector', 'bots', c.user_agent);
    else if (client.type === 'browser' && !HEADLESS.test(client.name || '') && !DALVIK.test(c.user_agent)) {
      add('device-detector', 'browsers', c.user_agent);
    }
    else add('device-detector', 'other', c.user_agent);
  }
}

// techpatterns: the folder says what an agent is.
for (const e of JSON.parse(fs.readFileSync(randomUaJson, 'utf8'))) {
  const folder = e.folder || '';
  let label = 'other';
  if (/^\/Spiders|\/Bots - Spiders|\/Validators/.test(folder)) label = 'bots';
  else if (/^\/Browsers - |^\/Miscellaneous\/Browsers - |^\/Miscellaneous\/Game Consoles|^\/Mobile Devices\/(?!Services)/.test(folder)) {
    label = 'browsers';
  }
  add('techpatterns', label, e.userAgent);
}

// woothee: each test case has a category.
const WOOTHEE_BROWSERS = new Set(['pc', 'smartphone', 'mobilephone', 'appliance']);
for (const f of fs.readdirSync(wootheeDir).filter((f) => f.endsWith('.yaml')).sort()) {
  for (const c of yaml.load(fs.readFileSync(path.join(wootheeDir, f), 'utf8')) || []) {
    const label = c.category === 'crawler' ? 'bots' : WOOTHEE_BROWSERS.has(c.category) ? 'browsers' : 'other';
    add('woothee', label, c.target);
  }
}

const HELD_OUT = ['uap-core', 'uap-core-pgts', 'fake-useragent'];
for (const source of ['device-detector', 'techpatterns', 'woothee']) {
  const set = (label) => (sets[`${source}.${label}`] ||= new Set());
  for (const ua of set('bots')) {
    set('browsers').delete(ua);
    set('other').delete(ua);
  }
  for (const ua of set('browsers')) set('other').delete(ua);
  let overlap = 0;
  for (const key of Object.keys(sets).filter((k) => HELD_OUT.includes(k.slice(0, k.lastIndexOf('.'))))) {
    for (const ua of sets[key]) {
      for (const label of ['bots', 'browsers', 'other']) if (set(label).delete(ua)) overlap++;
    }
  }
  console.error(`bots: ${source}: ${overlap} agents also in a held-out set left out`);
}

for (const [key, set] of Object.entries(sets).sort()) {
  fs.writeFileSync(path.join(outDir, `${key}.txt`), [...set].sort().join('\n') + '\n');
  console.error(`bots: eval/${key}.txt: ${set.size} agents`);
}
