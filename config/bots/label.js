// Labels the held-out evaluation corpora of loadtest/bots.sh, one agent per line.
// Run by `config/bots/fetch.sh --eval`:
//
//   node label.js JS_YAML UAP_CORE_DIR FAKE_USERAGENT_JSONL OUT_DIR
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
//
// The family list was written from uap-core's family names alone, before any of our results on
// these corpora were looked at; see config/bots/README.md.
'use strict';
const fs = require('fs');
const path = require('path');

const [yamlJs, uapDir, fakeJsonl, outDir] = process.argv.slice(2);
if (!outDir) throw new Error('usage: node label.js JS_YAML UAP_CORE_DIR FAKE_USERAGENT_JSONL OUT_DIR');
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
for (const [key, set] of Object.entries(sets).sort()) {
  fs.writeFileSync(path.join(outDir, `${key}.txt`), [...set].sort().join('\n') + '\n');
  console.error(`bots: eval/${key}.txt: ${set.size} agents`);
}
