// OpenAPI document (file given as the argument) -> raw Postman collection v2.1 on stdout.
// generate.py shapes the result (order, auth, variables, tests); this only converts.
const fs = require("node:fs");
const Converter = require("openapi-to-postmanv2");

const options = {
  folderStrategy: "Tags", // one folder per tag: logs, search, tenants, api keys, ...
  parametersResolution: "Schema", // placeholders (<string>), not random fake values
  requestNameSource: "Fallback", // the operation's summary
  enableOptionalParameters: true, // every parameter listed; generate.py disables most
  includeAuthInfoInExample: false,
};

Converter.convert({ type: "string", data: fs.readFileSync(process.argv[2], "utf8") }, options,
  (error, conversion) => {
    if (error || !conversion.result) {
      console.error(error ? error.stack : conversion.reason);
      process.exit(1);
    }
    process.stdout.write(JSON.stringify(conversion.output[0].data));
  });
