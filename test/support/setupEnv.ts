// Tests never inherit the developer's Azure settings.
for (const key of ['KEY_VAULT_URI', 'APPLICATIONINSIGHTS_CONNECTION_STRING', 'ACCESS_POLICY']) {
  delete process.env[key];
}
// The Application Insights SDK would otherwise report its own statistics to Azure.
process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = 'true';
