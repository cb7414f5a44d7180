// odin-demo-symbols.js: the channels the demo feed (WS_DEMO_FEED=1) publishes, for the page's
// picker. It mirrors DemoFeed::symbol_names in src/broker/demo_feed.cpp at the default
// WS_DEMO_SYMBOLS=100: the gateway has no endpoint that lists them, so this is the one copy in
// JavaScript, to be changed together with that file (or replaced once the gateway serves it).

const KNOWN = ['BTCUSD', 'ETHUSD', 'SOLUSD', 'BNBUSD', 'XRPUSD', 'ADAUSD', 'DOGEUSD', 'AVAXUSD',
  'DOTUSD', 'LINKUSD', 'MATICUSD', 'LTCUSD', 'TRXUSD', 'ATOMUSD', 'UNIUSD', 'XLMUSD', 'ETCUSD',
  'FILUSD', 'APTUSD', 'ARBUSD', 'NEARUSD', 'OPUSD', 'ICPUSD', 'HBARUSD', 'VETUSD', 'ALGOUSD',
  'AAVEUSD', 'MKRUSD', 'SANDUSD', 'MANAUSD', 'AXSUSD', 'EGLDUSD', 'XTZUSD', 'EOSUSD', 'THETAUSD',
  'FTMUSD', 'GRTUSD', 'SNXUSD', 'CRVUSD', 'LDOUSD'];

/** The 40 well-known symbols, then SYM040..SYM099, in the feed's order. */
export const DEMO_SYMBOLS = Object.freeze(Array.from({ length: 100 },
  (_, i) => (i < KNOWN.length ? KNOWN[i] : `SYM${String(i).padStart(3, '0')}`)));
