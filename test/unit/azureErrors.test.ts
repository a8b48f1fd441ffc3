import { createHttpHeaders, createPipelineRequest, RestError } from '@azure/core-rest-pipeline';
import { codeOf, describeAzureError, errorBodyPolicy, parseAzureErrorBody, statusOf } from '../../cli/deploy/azureErrors';

/** A failed call as a classic (core-client) SDK throws it: the body text kept on the response. */
function classicError(status: number, bodyAsText: string, message = bodyAsText, code?: string): RestError {
  const request = createPipelineRequest({ url: 'https://management.azure.com/x' });
  return new RestError(message, {
    statusCode: status,
    code,
    request,
    response: { status, headers: createHttpHeaders(), request, bodyAsText },
  });
}

describe('parseAzureErrorBody', () => {
  it.each([
    [
      "ARM's {error} (common-types ErrorResponse), details that add to the message",
      '{"error":{"code":"InvalidTemplateDeployment","message":"The template deployment failed.","details":[{"code":"StorageAccountAlreadyTaken","message":"The storage account named contosost is already taken."}]}}',
      {
        code: 'InvalidTemplateDeployment',
        message: 'The template deployment failed.',
        details: ['StorageAccountAlreadyTaken: The storage account named contosost is already taken.'],
      },
    ],
    [
      "the Web RP's capitalised body (Flex Consumption, Azure/terraform-azurerm-avm-res-web-site#283)",
      JSON.stringify({
        Code: 'BadRequest',
        Message:
          'The following site configuration property (Site.SiteConfig.LinuxFxVersion) for Flex Consumption sites is invalid.  Please remove or rename it before retrying.',
        Target: null,
        Details: [
          { Message: 'The following site configuration property ...' },
          { Code: 'BadRequest' },
          {
            ErrorEntity: {
              ExtendedCode: '51021',
              MessageTemplate: '{0} is invalid.  {1}',
              Parameters: [
                'The following site configuration property (Site.SiteConfig.LinuxFxVersion) for Flex Consumption sites',
                'Please remove or rename it before retrying.',
              ],
              Code: 'BadRequest',
              Message:
                'The following site configuration property (Site.SiteConfig.LinuxFxVersion) for Flex Consumption sites is invalid.  Please remove or rename it before retrying.',
            },
          },
        ],
        Innererror: null,
      }),
      {
        code: 'BadRequest',
        message:
          'The following site configuration property (Site.SiteConfig.LinuxFxVersion) for Flex Consumption sites is invalid.  Please remove or rename it before retrying.',
        extendedCode: '51021',
      },
    ],
    [
      'the Web RP body with ErrorEntity first by Code (Learn, ARM troubleshooting: Website with given name already exists)',
      '{"Code":"Conflict","Message":"Website with given name mysite already exists.","Target":null,"Details":[{"Message":"Website with given name mysite already exists."},{"Code":"Conflict"},{"ErrorEntity":{"Code":"Conflict","Message":"Website with given name mysite already exists.","ExtendedCode":"54001","MessageTemplate":"Website with given name {0} already exists.","Parameters":["mysite"],"InnerErrors":null}}],"Innererror":null}',
      { code: 'Conflict', message: 'Website with given name mysite already exists.', extendedCode: '54001' },
    ],
    [
      'the Storage RP, ARM-shaped with a target',
      '{"error":{"code":"StorageAccountAlreadyTaken","target":"contosost","message":"The storage account named contosost is already taken."}}',
      { code: 'StorageAccountAlreadyTaken', message: 'The storage account named contosost is already taken.' },
    ],
    [
      'a bare {code, message}, without the error wrapper',
      '{"code":"BadRequest","message":"Workspace resource id is invalid."}',
      { code: 'BadRequest', message: 'Workspace resource id is invalid.' },
    ],
    [
      "Table storage's odata.error",
      '{"odata.error":{"code":"AuthorizationPermissionMismatch","message":{"lang":"en-US","value":"This request is not authorized to perform this operation using this permission.\\nRequestId:1\\nTime:2026-12-06T00:00:00Z"}}}',
      {
        code: 'AuthorizationPermissionMismatch',
        message: 'This request is not authorized to perform this operation using this permission.',
      },
    ],
    [
      "Blob storage's XML, the request id lines left out",
      '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.\nRequestId:5d1\nTime:2026-12-06T00:00:00.0000000Z</Message></Error>',
      {
        code: 'AuthorizationPermissionMismatch',
        message: 'This request is not authorized to perform this operation using this permission.',
      },
    ],
  ])('reads %s', (_shape, body, expected) => {
    expect(parseAzureErrorBody(body)).toEqual(expected);
  });

  it.each([[undefined], [''], ['Bad Gateway'], ['[]'], ['{"value":[]}']])('answers undefined for %p', (body) => {
    expect(parseAzureErrorBody(body)).toBeUndefined();
  });

  it('cuts a message that runs on', () => {
    const parsed = parseAzureErrorBody(JSON.stringify({ error: { code: 'X', message: 'a'.repeat(2000) } }));
    expect(parsed?.message).toHaveLength(600);
    expect(parsed?.message?.endsWith('...')).toBe(true);
  });
});

describe('describeAzureError', () => {
  it("names the status, Azure's code and message when a classic SDK left the raw body as its message", () => {
    const body =
      '{"Code":"Conflict","Message":"Website with given name mysite already exists.","Details":[{"ErrorEntity":{"ExtendedCode":"54001"}}]}';
    const err = classicError(409, body);
    expect(describeAzureError(err)).toBe('409 Conflict: Website with given name mysite already exists. (extended code 54001)');
    expect(codeOf(err)).toBe('Conflict');
    expect(statusOf(err)).toBe(409);
  });

  it("keeps the SDK's own code and message where the body says nothing more", () => {
    const err = classicError(404, '', 'The Resource was not found.', 'ResourceNotFound');
    expect(describeAzureError(err)).toBe('404 ResourceNotFound: The Resource was not found.');
  });

  it('never repeats a body the SDK could not read, nor its "Unexpected status code"', () => {
    expect(describeAzureError(classicError(502, '<html>Bad Gateway</html>'))).toBe('502');
    const request = createPipelineRequest({ url: 'https://management.azure.com/y' });
    expect(describeAzureError(new RestError('Unexpected status code: 400', { statusCode: 400, request }))).toBe('400');
  });

  it('reads the body kept by the pipeline policy when the SDK dropped it (modular clients)', async () => {
    const request = createPipelineRequest({ url: 'https://management.azure.com/sites/x' });
    const body =
      '{"Code":"BadRequest","Message":"The following app setting (Site.SiteConfig.AppSettings.X) for Flex Consumption sites is invalid."}';
    await errorBodyPolicy.sendRequest(request, (req) =>
      Promise.resolve({
        request: req,
        status: 400,
        headers: createHttpHeaders(),
        bodyAsText: body,
      }),
    );
    const err = new RestError('Unexpected status code: 400', { statusCode: 400, request });
    expect(describeAzureError(err)).toBe(
      '400 BadRequest: The following app setting (Site.SiteConfig.AppSettings.X) for Flex Consumption sites is invalid.',
    );
  });

  it('passes other errors through by their message', () => {
    expect(describeAzureError(new Error('the principal has no object id yet'))).toBe('the principal has no object id yet');
    expect(describeAzureError('text')).toBe('text');
  });
});
