// Fault cases restart servers and drain thousands of events: each gets up to 6 minutes.
jest.setTimeout(360_000);
